"""Profiles: overrides of params.yaml that live side by side, each with a generated pipeline."""
import pytest
import yaml

from bench.params import ROOT, ParamsError, load_params, merge, resolve_raw
from bench.profiles import check_profile, pipeline, profile_names


def test_merge_mappings_key_by_key_lists_whole():
    base = dict(a=1, m=dict(x=1, y=dict(p=1, q=2)), l=[1, 2, 3])
    over = dict(m=dict(y=dict(q=5), z=3), l=[9])
    assert merge(base, over) == dict(a=1, m=dict(x=1, y=dict(p=1, q=5), z=3), l=[9])
    assert base['m']['y']['q'] == 2  # the base is not modified


def test_extends_chain_and_errors(tmp_path):
    (tmp_path / 'params.yaml').write_text((ROOT / 'params.yaml').read_text())
    prof = tmp_path / 'profiles' / 'x'
    prof.mkdir(parents=True)
    (prof / 'params.yaml').write_text('extends: ../../params.yaml\nprofile: x\n'
                                      'seeds: [3]\ntrain: {epochs: 2}\n')
    p = load_params(prof / 'params.yaml')
    base = load_params(tmp_path / 'params.yaml')
    assert p.seeds == (3,) and p.train.epochs == 2 and p.profile == 'x'
    assert p.train.lr == base.train.lr and p.model == base.model  # inherited
    # an override's error names the override file
    (prof / 'params.yaml').write_text('extends: ../../params.yaml\ntrain: {epoch: 2}\n')
    with pytest.raises(ParamsError, match=r"profiles/x/params.yaml: unknown key 'train.epoch'"):
        load_params(prof / 'params.yaml')
    (prof / 'params.yaml').write_text('extends: ../nothere.yaml\n')
    with pytest.raises(ParamsError, match='no such file'):
        load_params(prof / 'params.yaml')
    (prof / 'params.yaml').write_text('extends: params.yaml\n')
    with pytest.raises(ParamsError, match='cycle'):
        resolve_raw(prof / 'params.yaml')


@pytest.mark.parametrize('name', profile_names())
def test_shipped_profiles_are_valid_and_their_pipelines_current(name):
    """Every profile validates, and a committed ``profiles/<name>/dvc.yaml`` is exactly what the
    generator makes from today's top-level dvc.yaml (a drifted copy would run old stages)."""
    check_profile(name)
    generated = (ROOT / 'profiles' / name / 'dvc.yaml')
    if generated.is_file():
        assert generated.read_text() == pipeline(name), (
            f'profiles/{name}/dvc.yaml is out of date: run `python -m bench pipeline {name}`')


def test_paper_profile_is_the_papers_regime():
    p = load_params(ROOT / 'profiles' / 'paper' / 'params.yaml')
    assert tuple(p.model.heatmap_size) == (64, 64)
    assert p.tune.enabled and len(p.seeds) >= 8
    assert {'regression_dark', 'cls_ce', 'cls_ohem', 'cls_vbal'} <= set(p.active_methods)
    assert p.report.baseline == 'regression_dark'


def test_generated_pipeline_relocates_code_and_tracks_both_params_files():
    spec = yaml.safe_load(pipeline('paper'))['stages']
    top = yaml.safe_load((ROOT / 'dvc.yaml').read_text())['stages']
    assert set(spec) == set(top)
    train = spec['train']
    assert '../../bench/engine' in train['deps'] and '../../mmpose_configs' in train['deps']
    assert 'data/manifest.json' in train['deps']          # the profile's own data
    assert train['outs'] == top['train']['outs']         # the profile's own runs
    assert train['params'][0] == {'../../params.yaml': [
        'model', 'train', 'tune', 'sweep', 'data', 'methods', 'seeds', 'eval']}
    assert train['params'][1] == {'params.yaml': None}   # the override, whole
    assert train['cmd'] == top['train']['cmd']


def test_profile_must_name_itself_and_its_methods(tmp_path):
    (tmp_path / 'dvc.yaml').write_text((ROOT / 'dvc.yaml').read_text())
    (tmp_path / 'params.yaml').write_text((ROOT / 'params.yaml').read_text())
    prof = tmp_path / 'profiles' / 'y'
    prof.mkdir(parents=True)
    (prof / 'params.yaml').write_text('extends: ../../params.yaml\nprofile: z\n'
                                      'active_methods: [regression_dark]\n')
    with pytest.raises(ParamsError, match="profile = 'z': must be 'y'"):
        check_profile('y', tmp_path)
    (prof / 'params.yaml').write_text('extends: ../../params.yaml\nprofile: y\n')
    with pytest.raises(ParamsError, match='must set active_methods itself'):
        check_profile('y', tmp_path)
    with pytest.raises(ParamsError, match="no profile 'nope'"):
        check_profile('nope', tmp_path)
