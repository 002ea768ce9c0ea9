"""Customs Lab: the main ament_python package (the repository root)."""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'customs_lab'


def tree(directory):
    """Return data_files entries installing `directory` recursively under share/<pkg>."""
    entries = {}
    for path in glob(os.path.join(directory, '**', '*'), recursive=True):
        if os.path.isfile(path):
            target = os.path.join('share', PACKAGE, os.path.dirname(path))
            entries.setdefault(target, []).append(path)
    return sorted(entries.items())


setup(
    name=PACKAGE,
    version='0.1.0',
    package_dir={'': 'src'},
    packages=find_packages('src', exclude=['tests']),
    package_data={'customs_lab.clearance.migrations': ['script.py.mako']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('bin', ['scripts/customs-lab']),
        *tree('launch'),
        *tree('config'),
        *tree('urdf'),
        *tree('maps'),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='Customs Lab maintainers',
    maintainer_email='maintainers@customs-lab.org',
    description='Customs Lab: an open ROS 2 system for a customs inspection site.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'site_simulator = customs_lab.simulation.site_simulator_node:main',
            'evaluator = customs_lab.simulation.evaluator_node:main',
            'rpm_driver = customs_lab.radiation.rpm_driver_node:main',
            'rpm_alarm = customs_lab.radiation.rpm_alarm_node:main',
            'isotope_id = customs_lab.radiation.isotope_id_node:main',
            'dose_monitor = customs_lab.radiation.dose_monitor_node:main',
            'xray_driver = customs_lab.xray.xray_driver_node:main',
            'xray_inspection = customs_lab.xray.xray_inspection_node:main',
            'robot_driver = customs_lab.robot.robot_driver_node:main',
            'twist_mux = customs_lab.robot.twist_mux_node:main',
            'teleop_keyboard = customs_lab.robot.teleop_keyboard_node:main',
            'risk_fusion = customs_lab.fusion.risk_fusion_node:main',
            'clearance_bridge = customs_lab.clearance.clearance_bridge_node:main',
            'site_map = customs_lab.site.site_map_node:main',
            'customs_lab_cli = customs_lab.cli:main',
        ],
    },
)
