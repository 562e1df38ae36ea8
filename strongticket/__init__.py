"""strongticket: strong lottery tickets by random subset sum, with no training.

A target network goes in, a seed and a mask come out. See ``docs/design.md`` for the data flow.
"""

__version__ = "0.1.0"
