"""The face finder: detector + landmark refiner over any runtime.

The networks are passed in as callables (ONNX Runtime in the service, PyTorch while
training), so everything around them (decoding, shrinking, crops, peak finding, NMS and
coordinates) is this one implementation everywhere.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bearid.face.centernet import DetectorSpec, decode, detector_input, refine, refiner_input
from bearid.face.detection import Detection, suppress
from bearid.imageio import Photo

Network = Callable[[np.ndarray], np.ndarray]


class FaceFinder:
    def __init__(self, detect: Network, refine: Network, spec: DetectorSpec | None = None):
        self.detect, self.refine, self.spec = detect, refine, spec or DetectorSpec()

    def find(self, photo: Photo, threshold: float | None = None) -> list[Detection]:
        """Faces in a photo (boxes and landmarks in displayed pixels), best first.

        Suppression runs again on the refined boxes: two detections of one face that the
        detector's loose boxes kept apart converge on it once refined, and one face is one answer."""
        found: list[Detection] = []
        sides = self.spec.input_sides
        for i, side in enumerate(sides):
            x, k = detector_input(photo.image, photo.width, photo.height, side)
            limit = None if i == len(sides) - 1 else self.spec.max_face_input
            found += decode(self.detect(x)[0], k, self.spec, threshold, max_side=limit)
        faces = suppress(found, self.spec.nms_iou, self.spec.max_faces)
        if not faces:
            return []
        crops = np.stack([refiner_input(photo.image, photo.scale, f.box, self.spec) for f in faces])
        refined = [refine(face, pred, self.spec) for face, pred in zip(faces, self.refine(crops))]
        return suppress(refined, self.spec.nms_iou, self.spec.max_faces)
