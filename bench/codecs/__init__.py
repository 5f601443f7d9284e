"""Codec adapters: the protocol (:mod:`bench.codecs.base`) and its implementations."""

from bench.codecs.base import Codec, CodecConfig, Encoded, Param, RatePoint
from bench.errors import CodecError, CodecUnavailable

__all__ = ["Codec", "CodecConfig", "CodecError", "CodecUnavailable", "Encoded", "Param", "RatePoint"]
