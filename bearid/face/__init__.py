"""The face stage at inference: find each bear face (a box and five landmarks) in a photo.

`centernet` holds the detector's geometry (input pyramid, output decoding, refiner crops);
`finder` runs the networks over a photo, whatever runtime they are (ONNX Runtime in the
service, PyTorch while training), and suppresses overlapping faces.
"""

from bearid.face.centernet import DetectorSpec
from bearid.face.detection import Detection
from bearid.face.finder import FaceFinder, Network

__all__ = ["Detection", "DetectorSpec", "FaceFinder", "Network"]
