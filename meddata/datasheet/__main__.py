"""``python -m meddata.datasheet [PATH]``: regenerate ``schemas/healthsheet.schema.json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from meddata.datasheet.model import healthsheet_json_schema


def schema_text() -> str:
    """The JSON Schema of the Healthsheet as the file ``schemas/`` holds it."""
    return json.dumps(healthsheet_json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    """Write the schema to ``argv[0]`` (default: ``schemas/healthsheet.schema.json``)."""
    target = Path(argv[0]) if argv else Path("schemas/healthsheet.schema.json")
    target.write_text(schema_text(), "utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
