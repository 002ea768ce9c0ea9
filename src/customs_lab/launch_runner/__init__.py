"""`customs-lab launch`: runs ROS 2 XML launch files where the launch package is missing.

The PyPI wheels of ROS 2 Jazzy lack `launch`/`launch_ros`, so this package runs the project's
launch_xml files itself, faithfully for a documented subset (docs/LAUNCH.md):

- `xml_source`: reads the XML with the line of every element (for error messages);
- `substitutions`: `$(var)`, `$(env)`, `$(optenv)`, `$(find-pkg-share)`, `$(dirname)`...;
- `ament`: finds packages, share directories and executables the way ROS does;
- `description`: evaluates a launch file (arguments, includes, groups, conditions) into the
  processes to start;
- `runner`: starts, watches, respawns and stops those processes.

None of it imports rclpy: the runner starts nodes, it is not one.
"""
