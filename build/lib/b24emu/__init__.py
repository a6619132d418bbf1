"""b24emu: a local Bitrix24 portal that speaks the documented REST contract."""

from b24emu.app import create_app
from b24emu.emulator import Emulator
from b24emu.portal import Portal
from b24emu.seed import seed_portal

__all__ = ["Emulator", "Portal", "create_app", "seed_portal"]
