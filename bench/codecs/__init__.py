"""Codec adapters: the protocol (:mod:`bench.codecs.base`) and its implementations."""

from bench.codecs.base import Codec, CodecConfig, CodecError, CodecUnavailable, Encoded, Param, RatePoint

__all__ = ["Codec", "CodecConfig", "CodecError", "CodecUnavailable", "Encoded", "Param", "RatePoint"]
