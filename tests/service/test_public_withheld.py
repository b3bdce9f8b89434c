"""What the public answer withholds, beyond names: the agency's own file name of a render (it
often carries the artist's slug, e.g. ``mina_debut.mp4``, where ``\\bmina\\b`` finds nothing)."""

from __future__ import annotations

import json
from pathlib import Path

from likeness.service.public import public_result


def test_a_renders_file_name_is_not_shown_to_the_public(service_world) -> None:
    mina = service_world.workspace.registry.get_subject("mina")
    assert not mina.public_name
    verification = {
        "schema": "likeness.verify/1",
        "path": "/srv/uploads/x/teaser.mp4",
        "verdict_evidence": ["watermark payload found"],
        "watermark": {
            "ledger_entry": {
                "job_id": "j1",
                "grant_id": "g1",
                "subject_id": mina.id,
                "output_name": "mina_debut_teaser_v3.mp4",
                "kind": "render",
            }
        },
    }
    shown = public_result(verification, service_world.workspace, name="teaser.mp4", folder=Path("/srv/uploads/x"))
    text = json.dumps(shown)
    assert "mina" not in text.lower() and mina.id not in text
    assert shown["watermark"]["ledger_entry"]["output_name"] is None
    assert shown["watermark"]["ledger_entry"]["job_id"] == "j1"
