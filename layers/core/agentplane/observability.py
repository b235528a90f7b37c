"""Powertools Logger, Metrics and Tracer shared by the layer (one of each per process)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "agentplane"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="agentplane", service=SERVICE)
tracer = Tracer(service=SERVICE)
