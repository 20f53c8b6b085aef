"""Losses of CLV-Net: mask (BCE + Dice) and SRAlign (L_csc, L_rec)."""
