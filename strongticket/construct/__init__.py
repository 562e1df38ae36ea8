"""Constructions: a target network in, a Ticket (random spec + seed + masks) out. One module per paper.

* :mod:`strongticket.construct.pensia`: Pensia et al. 2020, depth 2L, subset sum per weight;
* :mod:`strongticket.construct.malach`: Malach et al. 2020, the "find one" baseline on the same network;
* :mod:`strongticket.construct.blocks`: the 2L fully connected block shared by both.
"""
