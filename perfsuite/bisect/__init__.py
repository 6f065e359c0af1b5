"""`perfsuite bisect`: find the commit that made a configuration slower.

decide.py (the statistics, pure), schedule.py (which boots to run, in what order, pure but
for the `measure` callback), simulate.py (synthetic levels and the peer rules, for the
benchmark), git.py (a private clone and its `git bisect`), build.py (the recipe plug-in and
the build cache), driver.py (everything together, resumable), render.py (text/markdown/JSON).
"""
