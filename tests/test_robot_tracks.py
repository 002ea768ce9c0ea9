"""Tracked-base kinematics: the ICR model, its inverse, arcs, encoder odometry and slip drift."""

import math

import pytest

from customs_lab.robot.tracks import EncoderOdometry, Pose2D, TrackModel

BASE = TrackModel(separation=0.5, sprocket_radius=0.08, ticks_per_rev=4096)


def test_without_skid_it_is_a_differential_drive():
    v_x, v_y, omega = BASE.twist(0.4, 0.6)
    assert v_x == pytest.approx(0.5) and v_y == 0.0 and omega == pytest.approx(0.2 / 0.5)


def test_the_inverse_gives_back_the_twist_with_skid():
    skid = TrackModel(0.5, 0.08, 4096, steering_efficiency=0.72, icr_offset=0.01)
    for v_x, omega in ((0.3, 0.0), (0.0, 0.8), (-0.2, -0.5), (0.5, 1.2)):
        left, right = skid.track_speeds(v_x, omega)
        got_x, got_y, got_omega = skid.twist(left, right)
        assert (got_x, got_omega) == pytest.approx((v_x, omega))
        assert got_y == pytest.approx(-0.01 * omega)
    # turning on the spot with skid takes faster tracks than B omega / 2
    left, right = skid.track_speeds(0.0, 1.0)
    assert right == pytest.approx(0.25 / 0.72) and left == pytest.approx(-right)


def test_arcs_integrate_exactly():
    pose = Pose2D()
    for _ in range(100):  # a quarter turn of radius 1 m in 100 steps
        pose.advance(math.pi / 2 / 10, 0.0, math.pi / 2 / 10, 0.1)
    assert (pose.x, pose.y, pose.yaw) == pytest.approx((1.0, 1.0, math.pi / 2), abs=1e-9)
    one = Pose2D()
    one.advance(math.pi / 2, 0.0, math.pi / 2, 1.0)  # the same arc in one step
    assert (one.x, one.y) == pytest.approx((1.0, 1.0), abs=1e-9)
    with pytest.raises(ValueError):
        pose.advance(0.1, 0.0, 0.0, -1.0)


def test_encoder_odometry_follows_a_true_motion_and_drifts_with_unmodelled_skid():
    true_floor = TrackModel(0.5, 0.08, 4096, steering_efficiency=0.72, slip=0.93)
    truth, dt = Pose2D(), 0.02
    nominal, calibrated = EncoderOdometry(BASE), EncoderOdometry(true_floor)
    angle = [0.0, 0.0]  # the sprockets' angles, rad
    for step in range(601):  # 12 s: straight 10 s, then 2 s turning on the spot (1 rad)
        v_x, omega = (0.4, 0.0) if step < 500 else (0.0, 0.5)
        v_left, v_right = true_floor.track_speeds(v_x, omega)
        if step:
            truth.advance(*true_floor.twist(v_left, v_right), dt)
            for side, speed in enumerate((v_left, v_right)):  # surface speed -> sprocket
                angle[side] += speed / (true_floor.slip * true_floor.sprocket_radius) * dt
        ticks = [round(a / (2 * math.pi) * 4096) for a in angle]
        nominal.update(*ticks, step * dt)
        calibrated.update(*ticks, step * dt)
    assert calibrated.pose.x == pytest.approx(truth.x, abs=0.01)
    assert calibrated.pose.yaw == pytest.approx(truth.yaw, abs=0.01)
    # a driver that ignores slip and skid overestimates distance and turning
    assert nominal.pose.x > truth.x * 1.05
    assert abs(nominal.pose.yaw) > abs(truth.yaw) * 1.3
    assert calibrated.distance == pytest.approx(4.0, rel=0.01)


def test_bad_models_and_out_of_order_counts_are_refused():
    with pytest.raises(ValueError, match='separation'):
        TrackModel(0.0, 0.08, 4096)
    with pytest.raises(ValueError, match='ticks_per_rev'):
        TrackModel(0.5, 0.08, 0)
    with pytest.raises(ValueError, match='steering_efficiency'):
        TrackModel(0.5, 0.08, 4096, steering_efficiency=1.5)
    odometry = EncoderOdometry(BASE)
    odometry.update(0, 0, 1.0)
    with pytest.raises(ValueError, match='out of order'):
        odometry.update(10, 10, 1.0)
