"""The third-party tools lic-bench builds itself (VTM, libvmaf's ``vmaf`` CLI): which release, and where
it is installed and found.

A low module, so that the code that *runs* a tool — the VTM codec (:mod:`bench.codecs.vtm`) and the
VMAF metric (:mod:`bench.metrics.vmaf`) — finds its binaries without importing the commands that
*build* it (:mod:`bench.tools.vtm`, :mod:`bench.tools.vmaf`), which sit above codecs and metrics.
Standard library only: CI runs the build commands with any ``python3``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME`` (or ``~/.cache``) ``/lic-bench``: where built tools are installed."""
    return Path(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")) / "lic-bench"


@dataclass(frozen=True)
class Release:
    """One source release of a tool: its name, version, tarball (and its sha256), upstream and tag."""

    name: str
    version: str
    tarball: str
    sha256: str
    upstream: str
    tag: str

    def prefix(self) -> Path:
        """The default install folder, ``cache_dir()/<name>-<version>``: where the tool is built into and found."""
        return cache_dir() / f"{self.name}-{self.version}"


VTM = Release("vtm", "23.13", "vtm-23.13-src.tar.gz",
              "f438040b80b0dc67229e90cc7d252ece653d1306d307f56472cf236c3ca09a53",
              "https://vcgit.hhi.fraunhofer.de/jvet/VVCSoftware_VTM", "VTM-23.13")

LIBVMAF = Release("libvmaf", "3.2.0", "libvmaf-3.2.0-src.tar.gz",
                  "0b3b83c1a6563083d011aea787ea4415f5e90932f34b2897c29dd097d9a47164",
                  "https://github.com/Netflix/vmaf", "v3.2.0")
