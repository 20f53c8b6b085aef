"""Losses of CLV-Net used by the model: the mask loss (BCE + Dice). SRAlign lives in clvnet.models.sralign."""
