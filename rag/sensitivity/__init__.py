"""Sensitive-data detection for the escalation router: what must never leave the company."""

from rag.sensitivity.detectors import Detector, Hit, default_detectors
from rag.sensitivity.scanner import Scanner

__all__ = ["Detector", "Hit", "Scanner", "default_detectors"]
