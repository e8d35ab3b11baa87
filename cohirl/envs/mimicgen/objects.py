"""Primitive-only object models for the MimicGen-style tasks (no mesh assets).

Every object is a robosuite ``CompositeObject`` (boxes and cylinders in one body) or a
``CompositeBodyObject`` (several such bodies linked by a slide or hinge joint). Sizes are half-sizes in
metres, as MuJoCo expects. Free objects get robosuite's default free joint; fixtures are built
without a root joint and are placed by writing ``model.body_pos`` at reset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from robosuite.models.objects import CompositeBodyObject, CompositeObject
from scipy.spatial.transform import Rotation

# Colours (rgba).
WOOD = (0.55, 0.36, 0.2, 1.0)
DARK_WOOD = (0.4, 0.25, 0.13, 1.0)
METAL = (0.6, 0.6, 0.65, 1.0)
DARK = (0.15, 0.15, 0.17, 1.0)
MUG_RED = (0.75, 0.15, 0.15, 1.0)
POD_BROWN = (0.45, 0.28, 0.12, 1.0)
HANDLE_BLUE = (0.15, 0.3, 0.75, 1.0)
RING_GOLD = (0.85, 0.65, 0.15, 1.0)
FRICTION = (1.0, 0.005, 0.0001)
GRIP_FRICTION = (1.5, 0.005, 0.0001)


@dataclass(frozen=True)
class Part:
    """One primitive geom: ``kind`` is "box" (half extents) or "cylinder" (radius, half height)."""

    kind: str
    size: tuple[float, ...]
    pos: tuple[float, float, float]
    rgba: tuple[float, float, float, float]
    quat: tuple[float, float, float, float] | None = None


def yaw_quat(yaw: float) -> tuple[float, float, float, float]:
    """MuJoCo (w, x, y, z) quaternion for a rotation of ``yaw`` radians about +z."""
    return (float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2)))


def _half_extent(part: Part) -> np.ndarray:
    if part.kind == "box":
        local = np.abs(np.asarray(part.size))
        if part.quat is not None:  # conservative: bounding sphere of a rotated box
            local = np.full(3, np.linalg.norm(local))
        return local
    radius, half_height = part.size
    if part.quat is not None:
        return np.full(3, max(radius, half_height))
    return np.array([radius, radius, half_height])


def build_object(
    name: str,
    parts: list[Part],
    density: float | list[float] = 500.0,
    friction: tuple[float, float, float] = FRICTION,
    free: bool = True,
) -> CompositeObject:
    """A one-body object made of ``parts``, positioned relative to the body origin."""
    lo = np.min([np.asarray(p.pos) - _half_extent(p) for p in parts], axis=0)
    hi = np.max([np.asarray(p.pos) + _half_extent(p) for p in parts], axis=0)
    total = np.maximum(np.abs(lo), np.abs(hi))
    return CompositeObject(
        name=name,
        total_size=total.tolist(),
        geom_types=[p.kind for p in parts],
        geom_sizes=[list(p.size) for p in parts],
        geom_locations=[list(p.pos) for p in parts],
        geom_quats=[list(p.quat) if p.quat is not None else None for p in parts],
        geom_rgbas=[list(p.rgba) for p in parts],
        geom_frictions=[list(friction)] * len(parts),
        geom_condims=[4] * len(parts),
        density=density,
        locations_relative_to_center=True,
        joints="default" if free else None,
    )


def ring_parts(
    inner: float,
    outer: float,
    half_len: float,
    n: int,
    center: tuple[float, float, float],
    rgba: tuple[float, float, float, float],
    axis: str = "z",
) -> list[Part]:
    """``n`` boxes approximating a hollow cylinder (a ring if short) around ``axis`` ("z" or "x")."""
    if axis not in ("z", "x"):
        raise ValueError(f"ring_parts: axis must be 'z' or 'x', got {axis!r}")
    half_width = outer * np.sin(np.pi / n) * 1.05  # slight overlap closes the seams
    half_thick = (outer - inner) / 2
    mid = inner + half_thick
    parts = []
    for i in range(n):
        ang = 2 * np.pi * i / n
        c, s = np.cos(ang), np.sin(ang)
        half = (float(np.cos(ang / 2)), float(np.sin(ang / 2)))
        if axis == "z":  # box x = radial, y = tangential, z = along the axis
            pos = (center[0] + mid * c, center[1] + mid * s, center[2])
            quat = (half[0], 0.0, 0.0, half[1])
            size = (half_thick, half_width, half_len)
        else:  # ring in the y-z plane, axis along x: box x = along the axis, y = radial, z = tangential
            pos = (center[0], center[1] + mid * c, center[2] + mid * s)
            quat = (half[0], half[1], 0.0, 0.0)
            size = (half_len, half_thick, half_width)
        parts.append(Part("box", size, pos, rgba, quat))
    return parts


def rod(
    start: tuple[float, float, float],
    end: tuple[float, float, float],
    radius: float,
    rgba: tuple[float, float, float, float],
) -> Part:
    """A cylinder from ``start`` to ``end``."""
    a, b = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
    direction = (b - a) / np.linalg.norm(b - a)
    rot, _ = Rotation.align_vectors([direction], [[0.0, 0.0, 1.0]])
    x, y, z, w = rot.as_quat()
    mid = (float(a[0] + b[0]) / 2, float(a[1] + b[1]) / 2, float(a[2] + b[2]) / 2)
    half_length = float(np.linalg.norm(b - a) / 2)
    return Part("cylinder", (radius, half_length), mid, rgba, (float(w), float(x), float(y), float(z)))


def articulated(
    name: str,
    base: CompositeObject,
    moving: CompositeObject,
    moving_pos: tuple[float, float, float],
    joint: dict[str, str],
) -> CompositeBodyObject:
    """A fixture: a static ``base`` body with ``moving`` attached through ``joint``."""
    return CompositeBodyObject(
        name=name,
        objects=[base, moving],
        object_locations=[np.zeros(3), np.asarray(moving_pos)],
        object_parents=[None, base.root_body],
        joints=None,
        body_joints={moving.root_body: [joint]},
    )
