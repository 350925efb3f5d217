"""3G/4G GPS elder watches: frame parser, encoder, TCP gateway and bridge to native messages."""

from devices.watch3g.alarms import ALARM_NAMES, STATUS_BITS, StatusWord, decode_status, encode_status
from devices.watch3g.bridge import Message, WatchBridge, frame_messages, serve
from devices.watch3g.encoding import (
    build_al,
    build_lk,
    build_ud,
    build_vitals,
    encode_frame,
    reply_for,
)
from devices.watch3g.errors import BridgeError, FrameError, FrameTooLarge
from devices.watch3g.frames import parse_frame
from devices.watch3g.gateway import WatchGateway
from devices.watch3g.model import Cell, Frame, Location, Wifi
from devices.watch3g.splitter import FrameSplitter, Skipped

__all__ = [
    "ALARM_NAMES",
    "STATUS_BITS",
    "BridgeError",
    "Cell",
    "Frame",
    "FrameError",
    "FrameSplitter",
    "FrameTooLarge",
    "Location",
    "Message",
    "Skipped",
    "StatusWord",
    "WatchBridge",
    "WatchGateway",
    "Wifi",
    "build_al",
    "build_lk",
    "build_ud",
    "build_vitals",
    "decode_status",
    "encode_frame",
    "encode_status",
    "frame_messages",
    "parse_frame",
    "reply_for",
    "serve",
]
