"""Whether a file's bytes hold a C2PA manifest store, for when the C2PA reader cannot parse it."""

from __future__ import annotations

import os
from pathlib import Path

#: JUMBF type of a C2PA manifest store ("c2pa" then the ISO 19566-5 suffix): its 16 bytes stand
#: at the head of the store in every container that carries one (MP4 uuid box, JPEG APP11, PNG
#: caBX), so their absence proves a file was never signed.
C2PA_STORE_UUID = bytes.fromhex("6332706100110010800000aa00389b71")


def holds_manifest_store(path: Path) -> bool:
    """True when the bytes of ``path`` contain a C2PA manifest store's JUMBF type.

    Positive evidence that a manifest was written into the file, for when the C2PA reader
    cannot parse the container (truncated, garbage appended, broken box sizes). One read of the
    file through a memory map (the hash already read it once).
    """
    import mmap

    try:
        with open(path, "rb") as stream:
            if os.fstat(stream.fileno()).st_size == 0:
                return False
            with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                return mapped.find(C2PA_STORE_UUID) >= 0
    except (OSError, ValueError):
        return True  # absence not proven: the reader's finding stands
