"""Simulated camera and images: raws, calibrations and the processed release.

`simulate_images` renders the truth universe with GalSim through a reduced
LSSTCam-imSim focal plane and writes everything in the legacy directory layout
whose path rules are `LegacyLayout`'s.
"""

from dpzero.sim.images.background import Background
from dpzero.sim.images.camera import FILTERS, CameraSpec, DetectorSpec, make_camera
from dpzero.sim.images.layout import DATASET_TYPES, MANIFEST, DatasetLayout, LegacyLayout
from dpzero.sim.images.observing import IMAGE_SIZES, ImageSize, Visit
from dpzero.sim.images.simulate import ImagesManifest, simulate_images

__all__ = [
    "DATASET_TYPES",
    "FILTERS",
    "IMAGE_SIZES",
    "MANIFEST",
    "Background",
    "CameraSpec",
    "DatasetLayout",
    "DetectorSpec",
    "ImageSize",
    "ImagesManifest",
    "LegacyLayout",
    "Visit",
    "make_camera",
    "simulate_images",
]
