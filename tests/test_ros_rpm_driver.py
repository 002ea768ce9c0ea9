"""The RPM driver node on a real pseudo-terminal: frames, corrupt data, a cable pulled and back."""

import os

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import pytest
from rclpy.parameter import Parameter

from customs_interfaces.msg import RadiationCounts

pytestmark = pytest.mark.ros


def statuses(messages, name_part):
    return [s for m in messages for s in m.status if name_part in s.name]


def active_driver(harness, link, sensor_id, **extra):
    """Add an RPM driver on `link` for parcels, configured and active."""
    from customs_lab.radiation.rpm_driver_node import RpmDriver

    overrides = [Parameter('port', value=str(link)), Parameter('sensor_id', value=sensor_id),
                 Parameter('subject_kind', value='parcel'),
                 Parameter('reconnect_period', value=0.1)]
    overrides += [Parameter(name, value=value) for name, value in extra.items()]
    driver = harness.add(RpmDriver(context=harness.context, parameter_overrides=overrides))
    driver.trigger_configure()
    driver.trigger_activate()
    return driver


def test_driver_reads_frames_survives_corruption_and_reconnects(harness, tmp_path):
    from customs_lab.simulation.rpm_firmware import RpmFirmware

    link = tmp_path / 'dev' / 'rpm_test'
    firmware = RpmFirmware(link, 'CL-RPM-2P', 'SN-T', ['left', 'right'])
    driver = active_driver(harness, link, 'rpm/test', silence_timeout=3.0)
    listener = harness.node('listener')
    received, diagnostics = [], []
    listener.create_subscription(RadiationCounts, 'counts', received.append, 100)
    listener.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 100)
    assert harness.spin_until(lambda: driver.stats['reconnects'] == 1, 5.0)

    def status_answered():
        firmware.poll_host(500)  # the simulator does this every tick
        return driver.panel_ids == ('left', 'right')

    assert harness.spin_until(status_answered, 5.0)

    firmware.send_occupancy(1000, True, 'RR123456785KR')
    for tick in range(10):
        firmware.send_counts(1000 + 100 * tick, 0.1, True, [100 + tick, 200 + tick])
        if tick == 0:  # on time; the next nine were held in the device and arrive in a burst
            assert harness.spin_until(lambda: len(received) == 1, 5.0)
            harness.spin_for(1.0)  # (the device measured them meanwhile)
    assert harness.spin_until(lambda: len(received) == 10, 5.0)
    assert [m.gamma_counts.tolist() for m in received][:2] == [[100, 200], [101, 201]]
    assert received[0].gamma_panel_ids == ['left', 'right']
    assert received[0].subject.id == 'RR123456785KR' and received[0].subject.id_valid
    assert received[0].sensor_id == 'rpm/test' and received[0].live_time == pytest.approx(0.1)
    # they arrived in one burst; stamped by the device's clock, 100 ms apart as its ticks say
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in received]
    assert [round(b - a, 6) for a, b in zip(stamps, stamps[1:], strict=False)] == [0.1] * 9

    # corrupt bytes between good lines: the bad line is counted, the good ones all arrive
    firmware.write_raw(b'$RPMC,99,1,100,0,5*0000\r\n\x00\x13garbage')
    for tick in range(5):
        firmware.send_counts(3000 + 100 * tick, 0.1, False, [1, 2])
    assert harness.spin_until(lambda: len(received) == 15, 5.0)
    assert driver.decoder.errors['crc'] == 1 and driver.decoder.errors['framing'] >= 1
    assert harness.spin_until(
        lambda: any(
            s.level == DiagnosticStatus.WARN for s in statuses(diagnostics[-3:], 'rpm_driver')
        ),
        5.0,
    )

    # pull the cable: the device disappears; the driver reports it and keeps retrying
    firmware.close()
    assert harness.spin_until(
        lambda: any(
            s.level == DiagnosticStatus.ERROR for s in statuses(diagnostics[-3:], 'rpm_driver')
        ),
        5.0,
    )
    # plug it back in (a new pty at the same link): the driver reopens it, frames flow again
    firmware = RpmFirmware(link, 'CL-RPM-2P', 'SN-T', ['left', 'right'])
    assert harness.spin_until(lambda: driver.stats['reconnects'] == 2, 5.0)
    harness.spin_for(0.3)
    firmware.send_counts(9000, 0.1, False, [7, 8])
    assert harness.spin_until(lambda: received[-1].gamma_counts.tolist() == [7, 8], 5.0)

    def live_device_reports_ok():
        firmware.send_status(9100)  # a device that keeps talking, with no more bad lines
        return any(
            s.level == DiagnosticStatus.OK for s in statuses(diagnostics[-1:], 'rpm_driver')
        )

    # the WARN for the earlier bad lines holds for ERROR_HOLD seconds, then clears
    assert harness.spin_until(live_device_reports_ok, 10.0)
    driver.trigger_deactivate()
    firmware.close()


def test_driver_refuses_a_bad_subject_kind(harness):
    from lifecycle_msgs.msg import State

    from customs_lab.radiation.rpm_driver_node import RpmDriver

    driver = harness.add(
        RpmDriver(
            context=harness.context, parameter_overrides=[Parameter('subject_kind', value='truck')]
        )
    )
    driver.trigger_configure()
    assert driver._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED


def test_driver_publishes_spectra_windows_and_a_status_per_spectrometer(harness, tmp_path):
    import numpy as np

    from customs_interfaces.msg import GammaSpectrum
    from customs_lab.radiation import protocol
    from customs_lab.simulation.portal_lane import LaneEvent, LaneFrame
    from customs_lab.simulation.rpm_firmware import RpmFirmware
    from customs_lab.site.layout import SpectrometerSpec

    nai = SpectrometerSpec('nai_left', (0.3, 0.5, 1.0), (0, -1, 0), 0.1, 0.4, 0.1, 64, 3000.0,
                           0.07, -0.003)
    link = tmp_path / 'dev' / 'rpm_spectra'
    firmware = RpmFirmware(link, 'CL-RPM-2P', 'SN-S', ['left', 'right'], (60.0, 600.0, 3000.0),
                           [nai], spectrum_period=0.5)
    driver = active_driver(harness, link, 'rpm/spectra')
    listener = harness.node('listener')
    counts, spectra, diagnostics = [], [], []
    listener.create_subscription(RadiationCounts, 'counts', counts.append, 100)
    listener.create_subscription(GammaSpectrum, 'spectrum', spectra.append, 100)
    listener.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 100)

    def status_answered():
        firmware.poll_host(500)
        return driver.window_edges == (60.0, 600.0, 3000.0) and 'nai_left' in driver.detectors

    assert harness.spin_until(status_answered, 5.0)
    rng = np.random.default_rng(4)
    sent = []
    for tick in range(10):
        spectrum = rng.poisson(3.0, 64)
        sent.append(spectrum)
        events = (LaneEvent(True, 'RR123456785KR', 0.52),) if tick == 0 else ()
        frame = LaneFrame(np.array([30, 40]), 0.1, True, events,
                          windows=np.array([[20, 9], [25, 14]]), spectra={'nai_left': spectrum})
        firmware.send_frame(1000 + 100 * tick, frame)
        if tick == 6:  # a spectrum line whose data is not Z32: counted, nothing else lost
            body = b'RPMG,77,1,nai_left,500,500,1,Z32,@@@@'
            firmware.write_raw(
                b'$' + body + b'*' + f'{protocol.crc16_ccitt(body):04X}'.encode() + b'\r\n')
    assert harness.spin_until(lambda: len(counts) == 10 and len(spectra) == 2, 5.0)
    assert driver.decoder.errors['content'] == 1
    first = counts[0]
    assert first.window_edges_kev.tolist() == [60.0, 600.0, 3000.0]
    assert first.gamma_window_counts.tolist() == [20, 9, 25, 14]
    assert first.subject_speed == pytest.approx(0.52) and first.subject.id == 'RR123456785KR'
    assert spectra[0].detector_id == 'nai_left' and spectra[0].sensor_id == 'rpm/spectra'
    assert spectra[0].counts.tolist() == np.sum(sent[:5], axis=0).tolist()
    assert spectra[1].counts.tolist() == np.sum(sent[5:], axis=0).tolist()
    assert spectra[0].live_time == pytest.approx(0.5) and spectra[0].occupied
    assert spectra[0].energy_calibration.tolist() == pytest.approx([0.0, 3000.0 / 64])
    assert spectra[0].gain == pytest.approx(1.0) and spectra[0].subject.id == 'RR123456785KR'

    def detector_ok():
        firmware.send_status(2500)
        firmware.send_frame(2600, LaneFrame(np.array([3, 4]), 0.5, False, (),
                                            np.array([[2, 1], [3, 1]]),
                                            {'nai_left': np.ones(64, dtype=int)}))
        found = statuses(diagnostics[-2:], 'rpm/spectra/nai_left')
        return any(s.level == DiagnosticStatus.OK and s.hardware_id == 'rpm/spectra/nai_left'
                   for s in found)

    assert harness.spin_until(detector_ok, 10.0)
    # the gain command reaches the device, which reports the new setting
    os.write(driver_port := os.open(str(link), os.O_WRONLY | os.O_NOCTTY),
             protocol.encode(protocol.SetGain('nai_left', 1.02)))
    os.close(driver_port)
    assert harness.spin_until(
        lambda: (firmware.poll_host(2700) or True)
        and driver.detectors['nai_left'][0].gain == pytest.approx(1.02),
        5.0,
    )
    driver.trigger_deactivate()
    firmware.close()


def test_driver_publishes_neutron_counts_and_reports_each_module(harness, tmp_path):
    import numpy as np

    from customs_lab.radiation import protocol
    from customs_lab.simulation.portal_lane import LaneEvent, LaneFrame
    from customs_lab.simulation.rpm_firmware import RpmFirmware

    link = tmp_path / 'dev' / 'rpm_neutron'
    # the simulated device takes its modules from the lane's frames (none named at power-on)
    firmware = RpmFirmware(link, 'CL-RPM-2P', 'SN-N', ['left', 'right'])
    driver = active_driver(harness, link, 'rpm/neutron', neutron_fault_live_time=2.0)
    listener = harness.node('listener')
    counts, diagnostics = [], []
    listener.create_subscription(RadiationCounts, 'counts', counts.append, 100)
    listener.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 100)

    def status_answered():
        firmware.poll_host(500)
        return driver.panel_ids == ('left', 'right')

    assert harness.spin_until(status_answered, 5.0)
    assert driver.neutron_ids == ()

    def frame(tick, left, right, occupied=True, events=()):
        return LaneFrame(np.array([30 + tick, 40]), 0.1, occupied, events,
                         neutron_counts={'he3_left': left, 'he3_right': right})

    for tick in range(10):
        events = (LaneEvent(True, 'RR123456785KR', 0.5),) if tick == 0 else ()
        firmware.send_frame(1000 + 100 * tick, frame(tick, tick % 3, 1, events=events))
        if tick == 4:  # a line whose neutron field is corrupt (its CRC is good): dropped whole
            body = b'RPMC,90,1450,100,1,31,40,N:1:x'
            firmware.write_raw(
                b'$' + body + b'*' + f'{protocol.crc16_ccitt(body):04X}'.encode() + b'\r\n')
    # neutron counts the status line does not name: the gamma counts still arrive
    firmware.send_counts(2000, 0.1, False, [5, 6], neutrons=[7])
    assert harness.spin_until(lambda: len(counts) == 11, 5.0)
    assert driver.neutron_ids == ('he3_left', 'he3_right')  # announced before the first frame
    assert [m.neutron_module_ids for m in counts[:10]] == [['he3_left', 'he3_right']] * 10
    assert [m.neutron_counts.tolist() for m in counts[:10]] == [[t % 3, 1] for t in range(10)]
    assert counts[0].gamma_counts.tolist() == [30, 40] and counts[0].subject.id == (
        'RR123456785KR')
    assert driver.decoder.errors['content'] == 1 and 'x' in driver.decoder.last_error
    assert counts[10].gamma_counts.tolist() == [5, 6] and len(counts[10].neutron_counts) == 0
    assert driver.stats['neutron_mismatches'] == 1

    def module(name):
        found = statuses(diagnostics[-2:], f'rpm/neutron/{name}')
        return found[-1] if found else None

    def counting():
        firmware.send_frame(2100, frame(0, 2, 1, occupied=False))
        left = module('he3_left')
        return left is not None and left.level == DiagnosticStatus.OK

    assert harness.spin_until(counting, 5.0)
    assert module('he3_left').hardware_id == 'rpm/neutron/he3_left'
    values = {v.key: v.value for v in module('he3_left').values}
    assert int(values['counts']) >= 11 and float(values['rate_cps']) > 0
    # he3_right stops counting (its high voltage failed): WARN after 2 s of live time
    for tick in range(25):
        firmware.send_frame(3000 + 100 * tick, frame(tick, 1, 0, occupied=False))

    def right_warns():
        firmware.send_frame(6000, frame(0, 1, 0, occupied=False))
        right = module('he3_right')
        return right is not None and right.level == DiagnosticStatus.WARN

    assert harness.spin_until(right_warns, 5.0)
    assert 'high voltage' in module('he3_right').message
    assert module('he3_left').level == DiagnosticStatus.OK
    driver.trigger_deactivate()
    firmware.close()
