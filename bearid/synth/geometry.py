"""The 3-D head model of a synthetic bear and its projection into a photo.

Every shape is a set of 3-D points in a head frame (x to the bear's left = image right on a
frontal face, y down, z towards the camera; unit = half the head width). A pose rotates them,
an orthographic camera projects them, and the same transform gives the ground-truth landmarks,
so landmarks sit exactly on the drawn features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bearid.synth.traits import BearTraits


@dataclass(frozen=True)
class Pose:
    yaw: float  # degrees; positive turns the nose to the image right
    pitch: float  # degrees; positive tilts the nose down
    roll: float  # degrees; in-plane rotation


@dataclass
class Shape:
    """A polygon in the photo and whether it faces the camera."""

    points: np.ndarray  # (N, 2) pixel coordinates
    visible: bool = True


@dataclass
class ProjectedHead:
    landmarks: dict[str, tuple[float, float]]  # leye reye nose lear rear head_top
    shapes: dict[str, Shape]  # drawable parts, by name
    box: tuple[float, float, float, float]  # left, top, width, height (square face box)
    scale: float  # pixels per head half-width


def rotation(pose: Pose) -> np.ndarray:
    y, p, r = np.radians([pose.yaw, pose.pitch, pose.roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def _disk(
    center: np.ndarray, normal: np.ndarray, rx: float, ry: float, n: int = 24, up: np.ndarray | None = None
) -> np.ndarray:
    """Points of an ellipse lying on the plane through `center` with `normal`."""
    normal = normal / np.linalg.norm(normal)
    up = np.array([0.0, -1.0, 0.0]) if up is None else up
    u = np.cross(up, normal)
    if np.linalg.norm(u) < 1e-6:
        u = np.array([1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)[:, None]
    return center + rx * np.cos(t) * u + ry * np.sin(t) * v


def _on_head(x: float, y: float, aspect: float) -> np.ndarray:
    """A point on the front of the (ellipsoidal) skull above image position (x, y)."""
    r2 = x * x + (y / aspect) ** 2
    z = np.sqrt(max(0.05, 1.0 - r2)) * 0.8
    return np.array([x, y, z])


def head_model(t: BearTraits) -> dict[str, np.ndarray]:
    """3-D points of every part of the head, in the head frame."""
    a = t.head_aspect
    m: dict[str, np.ndarray] = {}
    # Landmarks (single points, shape (1, 3)).
    eye_y = -0.12 * a
    m["leye"] = _on_head(t.eye_spacing, eye_y, a)[None]
    m["reye"] = _on_head(-t.eye_spacing, eye_y, a)[None]
    nose_y = eye_y + t.muzzle_length
    m["nose"] = np.array([[0.0, nose_y, 0.8 + 0.55 * t.muzzle_length]])
    ear_y = -0.78 * a
    m["lear"] = np.array([[t.ear_spacing, ear_y, 0.05]])
    m["rear"] = np.array([[-t.ear_spacing, ear_y, 0.05]])
    m["head_top"] = np.array([[0.0, -0.92 * a, 0.25]])
    # Skull outline: a slightly jowly ellipse facing the camera.
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    jowl = 1.0 + 0.12 * np.clip(np.sin(angles), 0, None)
    m["skull"] = np.stack([np.cos(angles) * jowl, np.sin(angles) * a * 0.98, np.full_like(angles, 0.0)], axis=1)
    # Ears: round or pointed lobes around the ear points, leaning outwards.
    for side, name in ((1, "lear"), (-1, "rear")):
        centre = m[name][0]
        lobe = _disk(centre, np.array([0.25 * side, -0.2, 1.0]), t.ear_size, t.ear_size * 1.1, n=28)
        tip = np.argmin(lobe[:, 1])
        pointed = (1 - t.ear_round) * 0.45 * t.ear_size
        lobe[tip] += np.array([0.15 * side * t.ear_size, -pointed, 0.0])
        if t.ear_notch == side:  # a bite out of the outer rim
            k = int(np.argmax(side * lobe[:, 0] - lobe[:, 1]))
            lobe[k] = centre + 0.45 * (lobe[k] - centre)
        m[f"{name}_lobe"] = lobe
        m[f"{name}_inner"] = _disk(
            centre + np.array([0, 0.02, 0.02]),
            np.array([0.25 * side, -0.2, 1.0]),
            t.ear_size * 0.55,
            t.ear_size * 0.6,
            n=20,
        )
    # Muzzle: a protruding snout between the eyes and the nose.
    snout_c = np.array([0.0, nose_y - 0.12, 0.75 + 0.3 * t.muzzle_length])
    m["muzzle"] = _disk(snout_c, np.array([0.0, 0.35, 1.0]), t.muzzle_width, t.muzzle_length * 0.55 + 0.08, n=32)
    m["nose_pad"] = _disk(
        m["nose"][0] + np.array([0, 0, 0.02]), np.array([0, 0.1, 1.0]), t.nose_width, t.nose_width * 0.62, n=20
    )
    mouth_t = np.linspace(-0.7, 0.7, 9)
    m["mouth"] = np.stack(
        [
            np.sin(mouth_t) * t.muzzle_width * 0.7,
            nose_y + 0.12 + 0.06 * np.cos(mouth_t * 2),
            np.full_like(mouth_t, 0.85 + 0.4 * t.muzzle_length),
        ],
        axis=1,
    )
    for name in ("leye", "reye"):
        centre = m[name][0]
        normal = centre / np.linalg.norm(centre)
        m[f"{name}_ball"] = _disk(centre, normal, t.eye_size, t.eye_size * 0.8, n=16)
        m[f"{name}_mask"] = _disk(centre, normal, t.eye_size * 2.6, t.eye_size * 2.0, n=20)
    if t.blaze > 0:
        m["blaze"] = _disk(_on_head(0.0, t.blaze_y * a, a), np.array([0.0, -0.3, 1.0]), t.blaze, t.blaze * 1.4, n=20)
    if t.scar[0] != t.scar[2] or t.scar[1] != t.scar[3]:
        s = np.linspace(0, 1, 6)[:, None]
        p0, p1 = np.array(t.scar[:2]), np.array(t.scar[2:])
        xy = p0 + s * (p1 - p0)
        m["scar"] = np.array([_on_head(x, y * a, a) + [0, 0, 0.01] for x, y in xy])
    return m


# Parts that are shown only when their surface faces the camera.
_FACING = {"leye_ball": "leye", "reye_ball": "reye", "leye_mask": "leye", "reye_mask": "reye"}


def project(t: BearTraits, pose: Pose, centre: tuple[float, float], scale: float) -> ProjectedHead:
    """Pose the head, project it to the photo, and derive landmarks and the face box."""
    rot = rotation(pose)
    model = head_model(t)
    cx, cy = centre

    # The skull's outline is a silhouette: it turns only with roll, and shifts a little
    # away from the nose as the head turns.
    roll_only = rotation(Pose(0.0, 0.0, pose.roll))
    turn = np.array([-0.12 * np.sin(np.radians(pose.yaw)), -0.08 * np.sin(np.radians(pose.pitch)), 0.0])

    def to_image(points: np.ndarray, silhouette: bool = False) -> tuple[np.ndarray, np.ndarray]:
        world = (points + turn) @ roll_only.T if silhouette else points @ rot.T
        return np.column_stack([cx + scale * world[:, 0], cy + scale * world[:, 1]]), world

    shapes: dict[str, Shape] = {}
    landmarks: dict[str, tuple[float, float]] = {}
    for name, points in model.items():
        xy, world = to_image(points, silhouette=name == "skull")
        if name in ("leye", "reye", "nose", "lear", "rear", "head_top"):
            landmarks[name] = (float(xy[0, 0]), float(xy[0, 1]))
            continue
        visible = True
        if name in _FACING:
            eye = model[_FACING[name]][0]
            visible = float((rot @ (eye / np.linalg.norm(eye)))[2]) > 0.2
        shapes[name] = Shape(xy, visible)
    return ProjectedHead(landmarks, shapes, face_box(landmarks, shapes["skull"].points), scale)


def face_box(landmarks: dict[str, tuple[float, float]], skull: np.ndarray) -> tuple[float, float, float, float]:
    """The square face box: around the skull outline and the five landmarks, like imglab's."""
    pts = np.vstack([skull, np.array([landmarks[k] for k in ("leye", "reye", "nose", "lear", "rear")])])
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    side = max(x1 - x0, y1 - y0) * 0.92
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    return (mx - side / 2, my - side / 2, side, side)
