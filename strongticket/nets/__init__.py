"""Networks: NetSpec descriptions, seeded random weights and the model zoo shared by constructions and trainer."""
