"""voxel models (family file of deepnum.models; filled in by the zoo work)."""
