"""The container inspection robot and its officer teleoperation (issue 6, being built).

Cores (no rclpy): twist_mux (the velocity command multiplexer, twist_mux's semantics),
teleop_keys (teleop_twist_keyboard's keys and speed steps), tracks (the tracked base's ICR
kinematics with skid and slip, encoder odometry), motor_protocol (the track motor controller's
serial protocol, docs/protocols/robot_motor.md), description (urdf/inspection_robot.urdf read as
robot_state_publisher reads it: joints and their transforms), safety (e-stop, bumpers,
obstacles in the swept corridor, the geofence: what a command may do), gas (readings of
phosphine, methyl bromide, CO2 and O2 against the published exposure limits), gas_protocol (the
gas sensor head's serial protocol, docs/protocols/robot_gas.md).
Nodes: robot_driver (the motor controller, odometry, TF, the description), twist_mux (the
multiplexer), teleop_keyboard (the officer's keyboard). The safety gate in the driver (it
needs the lidar and the map), the gas sensor node, the container simulation, mapping, the
inspection action and the launch file are to come.
"""
