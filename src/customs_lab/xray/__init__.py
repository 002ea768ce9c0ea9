"""The complex X-ray scanner for small cargo: dual-energy transmission plus backscatter.

Cores (no rclpy): scanner_model (the scanner's hardware description), scan (a parcel's raw scan,
the unit everything passes around), materials (attenuation from xraydb), spectrum (tube spectrum
from spekpy and the detectors' response), protocol (the scanner's TCP/Unix-socket line stream),
calibration (dark / air references and drift), assembly (lines into one scan per parcel), dicos
(raw data as NEMA DICOS files), decomposition (dual-energy Zeff and the colour image),
backscatter (low-density organic masses), segmentation (objects, mass), manifest (scan against
the declaration), threats (the CNN threat detector; train_threats trains it), inspection (all
of them on one scan, and the parcel's evidence), scan_messages (scans to and from ROS messages).
Nodes: the scanner driver, and the X-ray inspection that turns scans into Evidence.
The simulator that plays the scanner (physics and the parcels' contents) lives in
customs_lab.simulation.
"""
