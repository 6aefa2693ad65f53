import ipywidgets as widgets

from memlib.plots import interactive


def test_interactive_is_static_when_headless(monkeypatch):
    calls = []
    monkeypatch.setenv("MEMLIB_HEADLESS", "1")
    out = interactive(lambda a, b: calls.append((a, b)), a=widgets.Dropdown(options=[3, 4], value=4),
                      b=widgets.IntSlider(min=0, max=5, value=2))
    assert out is None and calls == [(4, 2)]


def test_interactive_is_a_widget_in_a_live_notebook(monkeypatch):
    monkeypatch.delenv("MEMLIB_HEADLESS", raising=False)
    calls = []
    w = interactive(lambda a: calls.append(a), a=widgets.Dropdown(options=[1, 2], value=1))
    assert isinstance(w, widgets.interactive)
    w.children[0].value = 2
    assert calls[-1] == 2
