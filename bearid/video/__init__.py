"""Video and camera-trap clips: decoding (`decode`), face tracks (`track`), one ID per track
(`identify`), the measures against synthetic truth (`measure`) and synthetic clips (`synth`).

PyAV (the [video] extra) decodes and encodes; every face is found, chipped, embedded and
named by the serving `Pipeline`'s own parts, so a frame's face is treated as a photo's is.
"""
