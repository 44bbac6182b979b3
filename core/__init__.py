"""The kernel every app stands on: who acts (actors), the error family (errors), the API's error
shape and pagination (api) and the edge's input rules (edge). It imports no app; apps plug
into it (the refusal signal in `core.signals`), never the other way round."""
