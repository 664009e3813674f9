"""IIIF Presentation API 3.0: records from collection exports, manifests, collections, Change Discovery."""
