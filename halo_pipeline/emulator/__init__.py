"""A local Halo Waypoint API emulator speaking the real wire format.

It serves recorded responses (:class:`RecordingStore`), synthetic players generated from a seed
(:class:`SyntheticWorld`), or both, on the API paths spnkr calls once redirected by
:func:`halo_pipeline.api.redirect.redirect_middleware`. Start it in-process with :class:`Emulator` or
blocking with :func:`serve`.
"""

from halo_pipeline.emulator.recordings import RecordingStore
from halo_pipeline.emulator.server import CombinedSource, Emulator, make_app, serve
from halo_pipeline.emulator.synthetic import SyntheticPlayer, SyntheticWorld

__all__ = ["CombinedSource", "Emulator", "RecordingStore", "SyntheticPlayer", "SyntheticWorld", "make_app", "serve"]
