"""Backup media: label files, finding the attached medium, and (later) rotation and the register."""
