"""Input and output formats -> the store: course HDF5/TSV, GTEx GCT, ARCHS4 H5, quantifier outputs
(salmon/kallisto/RSEM), tx2gene, name-based column alignment, validation, `convert` and `import`.
May import core and data."""
