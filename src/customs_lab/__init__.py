"""Customs Lab: an open ROS 2 system for a customs inspection site.

One sub-package per domain (radiation, fusion, clearance, simulation, site, ...). In each, the core
modules are plain Python/numpy and never import rclpy; the `*_node.py` modules are thin ROS 2 nodes
around them.
"""

__version__ = '0.1.0'
