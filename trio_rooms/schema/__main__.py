"""``python -m trio_rooms.schema MODULE:RoomClass [--out DIR]``: see `trio_rooms.schema`."""

import sys

from ._cli import main

sys.exit(main())
