"""Shipped model directories, installed as the ``kneeoa_models`` package data (``default/``)."""
