"""The synthetic generator: the world model (`world`), gene/isoform/tissue names (`names`) and the
course-format writer (`generate`). May import core and data."""
