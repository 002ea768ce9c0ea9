"""The container inspection robot and its officer teleoperation (issue 6, being built).

Cores (no rclpy): twist_mux (the velocity command multiplexer, twist_mux's semantics),
teleop_keys (teleop_twist_keyboard's keys and speed steps), tracks (the tracked base's ICR
kinematics with skid and slip, encoder odometry), motor_protocol (the track motor controller's
serial protocol, docs/protocols/robot_motor.md), description (urdf/inspection_robot.urdf read as
robot_state_publisher reads it: joints and their transforms).
Nodes: robot_driver (the motor controller, odometry, TF, the description), twist_mux (the
multiplexer), teleop_keyboard (the officer's keyboard). Safety (geofence, obstacles), the gas
sensor, the container simulation, mapping, the inspection action and the launch file are to
come.
"""
