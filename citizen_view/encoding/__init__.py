"""Linkage without sharing identifiers: keyed pseudonyms and Bloom-filter encodings (CLKs) made at each agency."""
