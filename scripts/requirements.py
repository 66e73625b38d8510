"""Print the pinned requirements of pyproject.toml, for an image's dependency layer:
``python requirements.py`` the serving set, ``python requirements.py repair`` with the repair
extra. Reads pyproject.toml beside this file (or the one given as --pyproject)."""

import argparse
import tomllib
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("extras", nargs="*", help="optional-dependency groups to add")
    parser.add_argument(
        "--pyproject", type=Path, default=Path(__file__).with_name("pyproject.toml")
    )
    args = parser.parse_args()
    project = tomllib.loads(args.pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in args.extras:
        requirements += project["optional-dependencies"][extra]
    print("\n".join(requirements))


if __name__ == "__main__":
    main()
