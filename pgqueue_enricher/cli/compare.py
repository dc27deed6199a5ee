"""placeholder"""

from typing import Any


def add_parser(commands: Any) -> None:
    commands.add_parser("compare")


def run(args: Any, load: Any, with_connection: Any) -> int:
    return 1
