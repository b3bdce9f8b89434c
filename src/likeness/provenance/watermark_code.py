"""Channel code of the invisible watermark: CRC-32 check + rate-1/2 convolutional code.

The watermark carries a 64-bit payload. Before it is spread over the image it is

1. extended with a CRC-32 (zlib polynomial, init and final xor ``0xFFFFFFFF``) computed over a
   domain tag plus the payload, so a decoder only accepts a payload whose check matches: a wrong
   decode is reported as "no mark", never as a wrong id (the tag also means an all-zero or
   all-one bit string is not a codeword);
2. encoded with the standard K=7 rate-1/2 convolutional code (generators 171, 133 octal) and
   terminated with 6 zero tail bits, so the decoder can correct scattered weak coded bits with
   a soft-decision Viterbi search.

Sizes: 64 payload bits + 32 check bits + 6 tail bits = 102 trellis steps -> 204 coded bits.

Example:
    >>> coded = encode_payload(bytes(range(8)))
    >>> coded.shape
    (204,)
    >>> decode_payload((2.0 * coded - 1.0).astype("float32")) == bytes(range(8))
    True
"""

from __future__ import annotations

import zlib

import numpy as np

from likeness.errors import ProvenanceError

PAYLOAD_BYTES = 8
PAYLOAD_BITS = 8 * PAYLOAD_BYTES
CHECK_BITS = 32
CONSTRAINT_LENGTH = 7
GENERATORS = (0o171, 0o133)
TAIL_BITS = CONSTRAINT_LENGTH - 1
INFO_BITS = PAYLOAD_BITS + CHECK_BITS
CODED_BITS = len(GENERATORS) * (INFO_BITS + TAIL_BITS)

# Binding the check to the algorithm id keeps another system's 64+32-bit strings from validating.
_CHECK_DOMAIN = b"likeness.tiled-ss.v1"
_N_STATES = 1 << (CONSTRAINT_LENGTH - 1)


def _parity(values: np.ndarray) -> np.ndarray:
    bits = np.unpackbits(values.astype(">u2").view(np.uint8).reshape(-1, 2), axis=1)
    return (bits.sum(axis=1) & 1).astype(np.uint8)


# Register convention: reg = (state << 1) | input_bit (7 bits, newest bit lowest);
# next_state = reg & 63. Predecessors of next state ns are (ns >> 1) and (ns >> 1) | 32.
_REGS = np.arange(1 << CONSTRAINT_LENGTH, dtype=np.uint16)
_REG_OUTPUTS = np.stack([_parity(_REGS & g) for g in GENERATORS], axis=1)  # (128, 2) in {0,1}
_NEXT = np.arange(_N_STATES)
_PRED_LOW = _NEXT >> 1
_PRED_HIGH = _PRED_LOW | (_N_STATES >> 1)
_REG_FROM_LOW = (_PRED_LOW << 1) | (_NEXT & 1)
_REG_FROM_HIGH = (_PRED_HIGH << 1) | (_NEXT & 1)
_SIGN_FROM_LOW = (2.0 * _REG_OUTPUTS[_REG_FROM_LOW] - 1.0).astype(np.float64)  # (64, 2)
_SIGN_FROM_HIGH = (2.0 * _REG_OUTPUTS[_REG_FROM_HIGH] - 1.0).astype(np.float64)


def payload_check(payload: bytes) -> bytes:
    """The 4-byte CRC-32 check of ``payload`` (big-endian), bound to the algorithm id."""
    return zlib.crc32(_CHECK_DOMAIN + payload).to_bytes(4, "big")


def check_payload(payload: object) -> bytes:
    """``payload`` as ``bytes`` if it is 8 bytes long; otherwise a ProvenanceError."""
    if not isinstance(payload, (bytes, bytearray)) or len(payload) != PAYLOAD_BYTES:
        shown = (
            f"{type(payload).__name__} of length {len(payload)}"
            if isinstance(payload, (bytes, bytearray))
            else type(payload).__name__
        )
        raise ProvenanceError(f"watermark payload must be {PAYLOAD_BYTES} bytes, got {shown}")
    return bytes(payload)


def convolutional_encode(info_bits: np.ndarray) -> np.ndarray:
    """Encode ``info_bits`` (uint8 (N,) of 0/1) with the terminated K=7 rate-1/2 code.

    Returns uint8 (2 * (N + 6),) coded bits, ordered step by step (g1, g2, g1, g2, ...).
    """
    bits = np.concatenate([np.asarray(info_bits, dtype=np.uint8), np.zeros(TAIL_BITS, np.uint8)])
    coded = np.empty((bits.size, len(GENERATORS)), dtype=np.uint8)
    state = 0
    for step, bit in enumerate(bits):
        reg = (state << 1) | int(bit)
        coded[step] = _REG_OUTPUTS[reg]
        state = reg & (_N_STATES - 1)
    return coded.reshape(-1)


def viterbi_decode(soft_bits: np.ndarray) -> np.ndarray:
    """Maximum-likelihood decode of soft coded bits of the terminated K=7 rate-1/2 code.

    ``soft_bits``: float (2 * steps,), positive means coded bit 1, magnitude is reliability
    (any common scale). Returns uint8 (steps - 6,) information bits.
    """
    soft = np.asarray(soft_bits, dtype=np.float64).reshape(-1, len(GENERATORS))
    steps = soft.shape[0]
    if steps <= TAIL_BITS:
        raise ProvenanceError(f"need more than {TAIL_BITS} trellis steps, got {steps}")
    metric = np.full(_N_STATES, -np.inf)
    metric[0] = 0.0
    from_high = np.zeros((steps, _N_STATES), dtype=bool)
    for step in range(steps):
        via_low = metric[_PRED_LOW] + _SIGN_FROM_LOW @ soft[step]
        via_high = metric[_PRED_HIGH] + _SIGN_FROM_HIGH @ soft[step]
        choose_high = via_high > via_low
        from_high[step] = choose_high
        metric = np.where(choose_high, via_high, via_low)
    state = 0  # terminated: the tail drives the encoder back to state 0
    decoded = np.empty(steps, dtype=np.uint8)
    for step in range(steps - 1, -1, -1):
        decoded[step] = state & 1
        state = int(_PRED_HIGH[state] if from_high[step, state] else _PRED_LOW[state])
    return decoded[: steps - TAIL_BITS]


def encode_payload(payload: bytes) -> np.ndarray:
    """Payload (8 bytes) -> uint8 (204,) coded bits (payload, CRC-32 check, tail)."""
    payload = check_payload(payload)
    message = payload + payload_check(payload)
    info_bits = np.unpackbits(np.frombuffer(message, dtype=np.uint8))
    return convolutional_encode(info_bits)


def decode_payload(soft_bits: np.ndarray) -> bytes | None:
    """Soft coded bits (float (204,), positive = 1) -> the 8-byte payload, or None.

    None means the Viterbi decision does not carry a valid check: for soft bits that hold no
    mark, this happens with probability 1 - 2**-32 per call.
    """
    soft = np.asarray(soft_bits)
    if soft.shape != (CODED_BITS,):
        raise ProvenanceError(f"expected {CODED_BITS} soft coded bits, got shape {soft.shape}")
    if not np.all(np.isfinite(soft)):
        return None
    message = np.packbits(viterbi_decode(soft)).tobytes()
    payload, check = message[:PAYLOAD_BYTES], message[PAYLOAD_BYTES:]
    return payload if payload_check(payload) == check else None
