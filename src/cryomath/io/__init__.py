"""File formats: MRC maps and stacks, STAR, cryoSPARC ``.cs``, cryoDRGN pickles.

Particle metadata of every format is read into a :class:`ParticleTable` (poses as RELION's A,
origins in Angstrom, CTF in RELION's units) and written from one. Writers are atomic and never
overwrite an existing file unless ``force=True``. See docs/conventions.md.
"""

from cryomath.io.cryodrgn import read_cryodrgn, read_cryodrgn_ctf, write_cryodrgn
from cryomath.io.cryosparc import read_cryosparc, write_cryosparc
from cryomath.io.formats import read_particles, write_particles
from cryomath.io.mrc import (
    ImageStack,
    MRCInfo,
    MRCStackWriter,
    read_mrc,
    read_mrc_header,
    write_mrc,
)
from cryomath.io.particles import CTFParameters, ParticleTable
from cryomath.io.relion import read_relion_star, write_relion_movies_star, write_relion_star
from cryomath.io.star import read_star, write_star

__all__ = [
    "CTFParameters",
    "ImageStack",
    "MRCInfo",
    "MRCStackWriter",
    "ParticleTable",
    "read_cryodrgn",
    "read_cryodrgn_ctf",
    "read_cryosparc",
    "read_mrc",
    "read_mrc_header",
    "read_particles",
    "read_relion_star",
    "read_star",
    "write_cryodrgn",
    "write_cryosparc",
    "write_mrc",
    "write_particles",
    "write_relion_movies_star",
    "write_relion_star",
    "write_star",
]
