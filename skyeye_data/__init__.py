"""SkyEye data toolkit: convert public remote-sensing datasets into SkyEye-968k-style instruction data.

This package never imports torch; the trainer lives in :mod:`skyeye_model`.
"""

__version__ = "0.1.0"
