"""Training of the knee-OA InceptionV3 classifier (workstation side; needs the ``train`` extra)."""
