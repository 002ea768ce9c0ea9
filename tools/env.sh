# Source this file (bash) to get the Customs Lab environment that `make run` and `make test` use:
#   source tools/env.sh
# It activates .venv (the ROS 2 wheels), and sources the colcon workspace ros2_ws/install.
_customs_lab_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_customs_lab_venv=${CUSTOMS_LAB_VENV:-$_customs_lab_root/.venv}
# shellcheck disable=SC1091
source "$_customs_lab_venv/bin/activate"
export AMENT_PREFIX_PATH="$_customs_lab_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$_customs_lab_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
# shellcheck disable=SC1091
source "$_customs_lab_root/ros2_ws/install/local_setup.bash"
unset _customs_lab_root _customs_lab_venv
