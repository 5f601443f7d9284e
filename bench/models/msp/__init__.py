"""MSP: multi-scale progressive probability model with constant sequential decoding steps.

A lic-bench re-implementation (not the authors' code, none is public) of the framework of
Zhang et al., "Leveraging progressive model and overfitting for efficient learned image
compression", arXiv 2210.04112. See :mod:`bench.models.msp.model` for the design.
"""

from bench.models.msp.factory import create_model
from bench.models.msp.model import MSPModel, read_header
from bench.models.msp.profiles import PROFILES, MSPProfile, get_profile, profile_from_params

__all__ = ["MSPModel", "MSPProfile", "PROFILES", "create_model", "get_profile", "profile_from_params", "read_header"]
