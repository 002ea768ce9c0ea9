"""Gas alarm levels against the published exposure limits; bad readings and limits refused."""

import pytest

from customs_lab.robot.gas import GasReading, assess, check_limits

CLEAN = GasReading(phosphine=0.0, methyl_bromide=0.0, carbon_dioxide=420.0, oxygen=20.9)


def test_fresh_air_is_ok():
    result = assess(CLEAN)
    assert result.level == 'ok' and not result.reasons
    assert set(result.levels.values()) == {'ok'}


@pytest.mark.parametrize(('gas', 'value', 'level'), [
    ('phosphine', 0.2, 'ok'), ('phosphine', 0.3, 'caution'), ('phosphine', 1.5, 'warning'),
    ('phosphine', 60.0, 'danger'),
    ('methyl_bromide', 0.5, 'ok'), ('methyl_bromide', 5.0, 'caution'),
    ('methyl_bromide', 25.0, 'warning'), ('methyl_bromide', 300.0, 'danger'),
    ('carbon_dioxide', 6000.0, 'caution'), ('carbon_dioxide', 35000.0, 'warning'),
    ('carbon_dioxide', 45000.0, 'danger'),
    ('oxygen', 19.0, 'caution'), ('oxygen', 24.0, 'caution'), ('oxygen', 15.0, 'danger'),
])
def test_each_gas_reaches_its_published_levels(gas, value, level):
    reading = GasReading(**{**CLEAN.__dict__, gas: value})
    result = assess(reading)
    assert result.levels[gas] == level and result.level == level
    if level != 'ok':
        assert gas.split('_')[0] in result.reasons[0]


def test_the_worst_gas_sets_the_level_and_every_problem_is_named():
    reading = GasReading(phosphine=2.0, methyl_bromide=0.0, carbon_dioxide=8000.0, oxygen=20.0)
    result = assess(reading)
    assert result.level == 'warning' and len(result.reasons) == 2


def test_site_limits_override_the_defaults_and_bad_ones_are_refused():
    limits = check_limits({'phosphine': [0.05, 0.3, 50.0]})  # a stricter site
    assert assess(GasReading(0.1, 0.0, 420.0, 20.9), limits).level == 'caution'
    with pytest.raises(ValueError, match='unknown gas'):
        check_limits({'ammonia': [25, 35, 300]})
    with pytest.raises(ValueError, match='rising'):
        check_limits({'phosphine': [1.0, 0.3, 50.0]})


@pytest.mark.parametrize('bad', [-0.1, float('nan'), float('inf'), True, '1'])
def test_readings_no_sensor_gives_are_refused(bad):
    with pytest.raises(ValueError, match='phosphine'):
        GasReading(phosphine=bad, methyl_bromide=0.0, carbon_dioxide=400.0, oxygen=20.9)
    with pytest.raises(ValueError, match='oxygen above'):
        GasReading(0.0, 0.0, 400.0, 120.0)
