"""The synthetic municipality behind ``casehistory.population.generator``.

``citizen`` draws one citizen's history, ``casework`` its caseworkers and meetings,
``delivery`` the noise upstream adds, ``arrival`` the topic's arrival order in bounded memory;
``calibration`` measures a population against the field's published figures.
"""
