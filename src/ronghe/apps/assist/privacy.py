"""The assistant masks with the service's shared masking (``serving/privacy.py``)."""

from ...serving.privacy import mask, mask_deep  # noqa: F401
