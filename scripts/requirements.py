"""Print the pinned requirements of pyproject.toml, for an image's dependency layer:
``python requirements.py`` the serving set, ``python requirements.py repair`` with the repair
extra. Reads the pyproject.toml beside this file or above it (or --pyproject)."""

import argparse
import tomllib
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("extras", nargs="*", help="optional-dependency groups to add")
    here = Path(__file__).resolve()
    beside = here.with_name("pyproject.toml")  # in the image's build folder
    default = beside if beside.is_file() else here.parents[1] / "pyproject.toml"
    parser.add_argument("--pyproject", type=Path, default=default)
    args = parser.parse_args()
    project = tomllib.loads(args.pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in args.extras:
        requirements += project["optional-dependencies"][extra]
    print("\n".join(requirements))


if __name__ == "__main__":
    main()
