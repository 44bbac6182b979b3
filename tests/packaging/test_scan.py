"""The pickle scanner names every import without loading anything, follows joblib's inline
arrays and compression within bounded memory, allows only exact (module, name) pairs, and tells
safe, suspicious (cannot be followed) and unsafe apart."""

from __future__ import annotations

import bz2
import io
import lzma
import os
import pickle
import tracemalloc
import warnings
import zlib

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from registry.packaging import child
from registry.packaging.scan import ALLOWED_GLOBALS, allowed, classify, scan, scan_skops


@pytest.fixture(scope="module")
def models():
    X, y = make_classification(n_samples=200, n_features=6, random_state=0)
    return {
        "forest": RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y),
        "pipeline": make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y),
    }


def _joblib(obj, **kwargs) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer, **kwargs)
    return buffer.getvalue()


class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/modelgate-pwned",))


class EvalEvil:
    def __reduce__(self):
        return (eval, ("1+1",))


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3)])
@pytest.mark.parametrize("which", ["forest", "pipeline"])
def test_scikit_learn_models_are_safe_in_every_joblib_form(models, which, compress):
    report = scan(io.BytesIO(_joblib(models[which], compress=compress)))
    assert report.verdict == "safe", report.as_dict()
    assert report.pickles >= 1 and report.skipped_array_bytes > 0
    assert any(name.startswith("sklearn.") for name in report.imports)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_plain_pickles_of_every_protocol(models, protocol):
    report = scan(io.BytesIO(pickle.dumps(models["pipeline"], protocol=protocol)))
    assert report.verdict == "safe", report.as_dict()


def _estimators() -> list[tuple[str, object]]:
    """A broad set of fitted scikit-learn models, dense and sparse."""
    import numpy as np
    import scipy.sparse as sp
    from sklearn import (
        calibration,
        cluster,
        compose,
        cross_decomposition,
        decomposition,
        discriminant_analysis,
        dummy,
        ensemble,
        feature_extraction,
        feature_selection,
        gaussian_process,
        impute,
        isotonic,
        kernel_approximation,
        kernel_ridge,
        linear_model,
        manifold,
        mixture,
        multiclass,
        multioutput,
        naive_bayes,
        neighbors,
        neural_network,
        pipeline,
        preprocessing,
        random_projection,
        semi_supervised,
        svm,
        tree,
    )
    from sklearn.datasets import make_classification, make_regression

    rng = np.random.RandomState(0)
    X, y = make_classification(
        n_samples=120, n_features=6, n_informative=5, n_redundant=0, n_classes=3, random_state=0
    )
    Xr, yr = make_regression(n_samples=120, n_features=6, random_state=0)
    Xs = sp.csr_matrix(np.where(np.abs(X) > 1, X, 0))
    Xpos = np.abs(X)
    texts = ["red fox jumps", "lazy dog sleeps"]
    labels = np.array(["cat", "dog", "emu"])[y]
    out = []

    def add(name, est, *fit):
        out.append((name, est.fit(*fit)))

    for cls in (
        linear_model.LogisticRegression,
        linear_model.SGDClassifier,
        linear_model.RidgeClassifier,
        linear_model.Perceptron,
        linear_model.PassiveAggressiveClassifier,
        svm.SVC,
        svm.LinearSVC,
        svm.NuSVC,
        tree.DecisionTreeClassifier,
        tree.ExtraTreeClassifier,
        ensemble.RandomForestClassifier,
        ensemble.ExtraTreesClassifier,
        ensemble.GradientBoostingClassifier,
        ensemble.HistGradientBoostingClassifier,
        ensemble.AdaBoostClassifier,
        ensemble.BaggingClassifier,
        neighbors.KNeighborsClassifier,
        neighbors.RadiusNeighborsClassifier,
        neighbors.NearestCentroid,
        naive_bayes.GaussianNB,
        discriminant_analysis.LinearDiscriminantAnalysis,
        discriminant_analysis.QuadraticDiscriminantAnalysis,
        neural_network.MLPClassifier,
        dummy.DummyClassifier,
        gaussian_process.GaussianProcessClassifier,
        semi_supervised.LabelSpreading,
        semi_supervised.LabelPropagation,
    ):
        kwargs = {"radius": 10.0} if cls is neighbors.RadiusNeighborsClassifier else {}
        if "n_estimators" in cls().get_params():
            kwargs["n_estimators"] = 3
        if "max_iter" in cls().get_params() and cls is not ensemble.HistGradientBoostingClassifier:
            kwargs["max_iter"] = 50
        add(cls.__name__, cls(**kwargs), X, y)
    add("LogisticRegression-labels", linear_model.LogisticRegression(), X, labels)
    add("HistGB-labels", ensemble.HistGradientBoostingClassifier(max_iter=5), X, labels)
    add(
        "HistGB-categorical",
        ensemble.HistGradientBoostingClassifier(max_iter=5, categorical_features=[0]),
        np.c_[rng.randint(0, 4, 120), X[:, 1:]],
        y,
    )
    for cls in (
        linear_model.LinearRegression,
        linear_model.Ridge,
        linear_model.Lasso,
        linear_model.ElasticNet,
        linear_model.SGDRegressor,
        linear_model.HuberRegressor,
        linear_model.BayesianRidge,
        linear_model.ARDRegression,
        linear_model.TheilSenRegressor,
        linear_model.RANSACRegressor,
        linear_model.PoissonRegressor,
        linear_model.TweedieRegressor,
        linear_model.QuantileRegressor,
        linear_model.Lars,
        linear_model.LassoLars,
        linear_model.OrthogonalMatchingPursuit,
        svm.SVR,
        svm.LinearSVR,
        svm.NuSVR,
        tree.DecisionTreeRegressor,
        ensemble.RandomForestRegressor,
        ensemble.ExtraTreesRegressor,
        ensemble.GradientBoostingRegressor,
        ensemble.HistGradientBoostingRegressor,
        ensemble.AdaBoostRegressor,
        ensemble.BaggingRegressor,
        neighbors.KNeighborsRegressor,
        neural_network.MLPRegressor,
        dummy.DummyRegressor,
        kernel_ridge.KernelRidge,
        gaussian_process.GaussianProcessRegressor,
        cross_decomposition.PLSRegression,
    ):
        kwargs = {}
        if "n_estimators" in cls().get_params():
            kwargs["n_estimators"] = 3
        add(
            cls.__name__,
            cls(**kwargs),
            np.abs(Xr) if cls is linear_model.PoissonRegressor else Xr,
            np.abs(yr)
            if cls in (linear_model.PoissonRegressor, linear_model.TweedieRegressor)
            else yr,
        )
    add("IsotonicRegression", isotonic.IsotonicRegression(), Xr[:, 0], yr)
    add(
        "Stacking",
        ensemble.StackingClassifier(
            [("lr", linear_model.LogisticRegression()), ("dt", tree.DecisionTreeClassifier())]
        ),
        X,
        y,
    )
    add(
        "Voting",
        ensemble.VotingClassifier(
            [("lr", linear_model.LogisticRegression()), ("nb", naive_bayes.GaussianNB())],
            voting="soft",
        ),
        X,
        y,
    )
    add(
        "StackingRegressor",
        ensemble.StackingRegressor(
            [("r", linear_model.Ridge()), ("dt", tree.DecisionTreeRegressor())]
        ),
        Xr,
        yr,
    )
    add(
        "VotingRegressor",
        ensemble.VotingRegressor(
            [("r", linear_model.Ridge()), ("dt", tree.DecisionTreeRegressor())]
        ),
        Xr,
        yr,
    )
    add("IsolationForest", ensemble.IsolationForest(n_estimators=3), X)
    add("OneVsRest", multiclass.OneVsRestClassifier(svm.LinearSVC()), X, y)
    add("OneVsOne", multiclass.OneVsOneClassifier(svm.LinearSVC()), X, y)
    add(
        "OutputCode",
        multiclass.OutputCodeClassifier(linear_model.LogisticRegression(), random_state=0),
        X,
        y,
    )
    add("MultiOutput", multioutput.MultiOutputRegressor(linear_model.Ridge()), Xr, np.c_[yr, yr])
    add(
        "Chain",
        multioutput.ClassifierChain(linear_model.LogisticRegression()),
        X,
        np.c_[y == 1, y == 2],
    )
    add("Calibrated", calibration.CalibratedClassifierCV(svm.LinearSVC(), cv=3), X, y)
    add("OneClassSVM", svm.OneClassSVM(), X)
    add("LocalOutlierFactor", neighbors.LocalOutlierFactor(novelty=True), X)
    # Sparse inputs.
    for cls in (
        linear_model.LogisticRegression,
        svm.SVC,
        svm.LinearSVC,
        linear_model.SGDClassifier,
        naive_bayes.MultinomialNB,
        naive_bayes.BernoulliNB,
        naive_bayes.ComplementNB,
        neighbors.KNeighborsClassifier,
        tree.DecisionTreeClassifier,
        ensemble.RandomForestClassifier,
    ):
        kwargs = {"n_estimators": 3} if cls is ensemble.RandomForestClassifier else {}
        add(f"{cls.__name__}-sparse", cls(**kwargs), abs(Xs), y)
    add("CategoricalNB", naive_bayes.CategoricalNB(), rng.randint(0, 3, (120, 4)), y)
    add("MultinomialNB", naive_bayes.MultinomialNB(), Xpos, y)
    add("LinearSVR-sparse", svm.SVR(), Xs, y.astype(float))
    add("Ridge-sparse", linear_model.Ridge(), Xs, y.astype(float))
    # Transformers, encoders, pipelines.
    for est in (
        preprocessing.StandardScaler(),
        preprocessing.MinMaxScaler(),
        preprocessing.MaxAbsScaler(),
        preprocessing.RobustScaler(),
        preprocessing.Normalizer(),
        preprocessing.Binarizer(),
        preprocessing.PolynomialFeatures(),
        preprocessing.SplineTransformer(),
        preprocessing.QuantileTransformer(n_quantiles=20),
        preprocessing.PowerTransformer(),
        preprocessing.KBinsDiscretizer(),
        preprocessing.FunctionTransformer(np.log1p),
        impute.SimpleImputer(),
        impute.KNNImputer(),
        impute.MissingIndicator(features="all"),
        decomposition.PCA(n_components=2),
        decomposition.TruncatedSVD(n_components=2),
        decomposition.NMF(n_components=2, max_iter=50),
        decomposition.FastICA(n_components=2),
        decomposition.KernelPCA(n_components=2),
        decomposition.IncrementalPCA(n_components=2),
        decomposition.FactorAnalysis(n_components=2),
        decomposition.LatentDirichletAllocation(n_components=2, max_iter=2),
        feature_selection.SelectKBest(k=2),
        feature_selection.VarianceThreshold(),
        feature_selection.RFE(linear_model.LogisticRegression(), n_features_to_select=2),
        feature_selection.SelectFromModel(linear_model.LogisticRegression()),
        kernel_approximation.RBFSampler(),
        kernel_approximation.Nystroem(n_components=10),
        random_projection.GaussianRandomProjection(n_components=2),
        random_projection.SparseRandomProjection(n_components=2),
        manifold.Isomap(n_components=2),
        cluster.KMeans(n_clusters=3, n_init=1),
        cluster.MiniBatchKMeans(n_clusters=3, n_init=1),
        cluster.Birch(n_clusters=3),
        cluster.DBSCAN(),
        cluster.AgglomerativeClustering(),
        cluster.MeanShift(),
        cluster.AffinityPropagation(),
        mixture.GaussianMixture(n_components=2),
        mixture.BayesianGaussianMixture(n_components=2),
        neighbors.NearestNeighbors(),
        neighbors.KernelDensity(),
    ):
        add(type(est).__name__, est, Xpos, y)
    add("KBinsDiscretizer-onehot", preprocessing.KBinsDiscretizer(encode="onehot"), X)
    add(
        "OneHotEncoder", preprocessing.OneHotEncoder(handle_unknown="ignore"), labels.reshape(-1, 1)
    )
    add(
        "OneHotEncoder-dense",
        preprocessing.OneHotEncoder(sparse_output=False),
        rng.randint(0, 3, (120, 2)),
    )
    add("OrdinalEncoder", preprocessing.OrdinalEncoder(), labels.reshape(-1, 1))
    add("TargetEncoder", preprocessing.TargetEncoder(), labels.reshape(-1, 1), y)
    add("LabelEncoder", preprocessing.LabelEncoder(), labels)
    add("LabelBinarizer", preprocessing.LabelBinarizer(), labels)
    add("MultiLabelBinarizer", preprocessing.MultiLabelBinarizer(), [["a", "b"], ["c"]])
    add("DictVectorizer", feature_extraction.DictVectorizer(), [{"a": 1.0, "b": 2.0}])
    add("FeatureHasher", feature_extraction.FeatureHasher(n_features=8), [{"a": 1.0}])
    add("CountVectorizer", feature_extraction.text.CountVectorizer(), texts)
    add("TfidfVectorizer", feature_extraction.text.TfidfVectorizer(), texts)
    add("TfidfTransformer", feature_extraction.text.TfidfTransformer(), abs(Xs))
    add("HashingVectorizer", feature_extraction.text.HashingVectorizer(n_features=16), ["red fox"])
    add(
        "text-pipeline",
        pipeline.make_pipeline(
            feature_extraction.text.TfidfVectorizer(), linear_model.LogisticRegression()
        ),
        [*texts, "red dog", "fox fox"] * 10,
        y[:40],
    )
    add(
        "Pipeline",
        pipeline.make_pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression()),
        X,
        y,
    )
    add(
        "FeatureUnion",
        pipeline.make_union(decomposition.PCA(n_components=2), preprocessing.StandardScaler()),
        X,
    )
    columns = compose.ColumnTransformer(
        [
            (
                "num",
                pipeline.make_pipeline(impute.SimpleImputer(), preprocessing.StandardScaler()),
                [0, 1, 2],
            ),
            ("cat", preprocessing.OneHotEncoder(handle_unknown="ignore"), [3]),
        ],
        remainder="passthrough",
    )
    mixed = np.c_[X[:, :3], rng.randint(0, 3, 120), X[:, 4:]]
    add(
        "ColumnTransformer",
        pipeline.make_pipeline(columns, ensemble.HistGradientBoostingClassifier(max_iter=5)),
        mixed,
        y,
    )
    add(
        "ColumnTransformer-drop",
        compose.ColumnTransformer(
            [("s", preprocessing.StandardScaler(), [0, 1])], remainder="drop"
        ),
        X,
    )
    add(
        "TransformedTarget",
        compose.TransformedTargetRegressor(
            regressor=linear_model.Ridge(), transformer=preprocessing.StandardScaler()
        ),
        Xr,
        yr,
    )
    add(
        "TransformedTarget-func",
        compose.TransformedTargetRegressor(
            regressor=linear_model.Ridge(), func=np.log1p, inverse_func=np.expm1
        ),
        Xr,
        np.abs(yr),
    )
    from sklearn.model_selection import GridSearchCV

    add(
        "GridSearch", GridSearchCV(linear_model.LogisticRegression(), {"C": [0.1, 1.0]}, cv=2), X, y
    )
    add("Bagging-sparse", ensemble.BaggingClassifier(n_estimators=2), Xs, y)
    out.append(("float32-array", np.zeros((3, 2), dtype=np.float32)))
    out.append(("sparse-csc", sp.csc_matrix(Xs)))
    return out


def test_a_broad_set_of_real_models_is_safe_in_every_form():
    """The allow-list was generated from these models: each must pass as a pickle, a joblib
    file and a skops file. A model that fails here names the pairs the list lacks."""
    import skops.io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = _estimators()
    missing = set()
    for label, model in models:
        forms = [pickle.dumps(model, protocol=p) for p in (0, 2, 5)]
        forms += [_joblib(model), _joblib(model, compress=3)]
        for data in forms:
            report = scan(io.BytesIO(data))
            assert not report.problems, (label, report.problems)
            missing |= {(label, name) for name in report.unknown + report.dangerous}
        try:
            data = skops.io.dumps(model)
        except (TypeError, NotImplementedError):
            continue  # skops cannot save every estimator (Birch)
        report = scan_skops(io.BytesIO(data))
        missing |= {(label, name) for name in report.unknown + report.dangerous}
    assert not missing, sorted(missing)


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_a_command_in_reduce_is_unsafe_and_never_runs(protocol, tmp_path):
    marker = "/tmp/modelgate-pwned"
    if os.path.exists(marker):
        os.remove(marker)
    report = scan(io.BytesIO(pickle.dumps(Evil(), protocol=protocol)))
    assert report.verdict == "unsafe" and report.dangerous in (["posix.system"], ["nt.system"])
    assert "module posix" in report.reasons[report.dangerous[0]]
    assert not os.path.exists(marker)
    assert scan(io.BytesIO(pickle.dumps(EvalEvil()))).dangerous == ["builtins.eval"]


def test_unknown_imports_are_unsafe_and_broken_streams_suspicious(models):
    import fractions

    report = scan(io.BytesIO(pickle.dumps(fractions.Fraction(1, 3))))
    assert report.verdict == "unsafe" and report.unknown == ["fractions.Fraction"]
    assert scan(io.BytesIO(b"definitely not a pickle")).verdict == "suspicious"
    truncated = pickle.dumps(models["forest"])[:400]
    report = scan(io.BytesIO(truncated))
    assert report.verdict == "suspicious" and "could not be followed" in report.problems[0]


def test_object_arrays_are_scanned_as_nested_pickles():
    data = _joblib({"labels": np.array(["a", Evil()], dtype=object)})
    assert scan(io.BytesIO(data)).verdict == "unsafe"


@pytest.mark.parametrize(
    "module,name,kind",
    [
        ("sklearn.tree._tree", "Tree", "allowed"),
        ("numpy", "dtype", "allowed"),
        ("builtins", "set", "allowed"),
        ("builtins", "setattr", "dangerous"),
        ("subprocess", "Popen", "dangerous"),
        ("os.path", "join", "dangerous"),
        ("builtins", "getattr", "dangerous"),
        ("pandas.core.frame", "DataFrame", "unknown"),
        # Allowed libraries, but the parts that read or write files or fetch data are not.
        ("numpy", "load", "dangerous"),
        ("numpy", "memmap", "dangerous"),
        ("numpy.lib.npyio", "savetxt", "dangerous"),
        ("numpy.f2py", "compile", "dangerous"),
        ("sklearn.datasets", "fetch_openml", "dangerous"),
        ("numpy", "ones", "allowed"),
        ("sklearn.utils._testing", "assert_no_warnings", "dangerous"),
        ("numpy._core", "_ufunc_reconstruct", "dangerous"),
        ("numpy.core", "_ufunc_reconstruct", "dangerous"),
        # Exact pairs: a name under an allowed module is not allowed by being there.
        ("sklearn.base", "BaseEstimator", "unknown"),
        ("numpy", "frombuffer", "unknown"),
        ("sklearn.base", "platform.os.system", "dangerous"),
        ("datetime", "sys", "dangerous"),
        ("sklearn.tree._tree", "Tree.__reduce__", "dangerous"),
        ("numpy", "random.mtrand.RandomState", "unknown"),
    ],
)
def test_classification(module, name, kind):
    assert classify(module, name) == kind


def test_no_allowed_pair_looks_dangerous_or_walks():
    for module, names in ALLOWED_GLOBALS.items():
        for name in names:
            assert classify(module, name) == "allowed"
            assert "." not in name, (module, name)


def _stack_global(module: str, name: str, protocol: int) -> bytes:
    """A pickle that imports `name` from `module` and calls it with "id": the payloads that
    walked past the old prefix allow-list."""
    if protocol == 0:
        return f"c{module}\n{name}\n(S'id'\ntR.".encode()

    def text(value: str) -> bytes:
        raw = value.encode()
        return b"\x8c" + bytes([len(raw)]) + raw

    return b"\x80\x04" + text(module) + text(name) + b"\x93" + text("id") + b"\x85R."


ATTACKS = [
    ("sklearn.base", "platform.os.system"),
    ("datetime", "sys.modules"),
    ("datetime", "sys"),
    ("numpy", "testing.os.system"),
    ("sklearn.base", "__builtins__.eval"),
]
ATTACKS += [
    (module, walk) for module in sorted(ALLOWED_GLOBALS) for walk in ("os.system", "sys.modules")
]


@pytest.mark.parametrize("protocol", [0, 4])
@pytest.mark.parametrize("module,name", ATTACKS)
def test_an_attribute_walk_through_any_admitted_module_is_unsafe(module, name, protocol):
    report = scan(io.BytesIO(_stack_global(module, name, protocol)))
    assert report.verdict == "unsafe", report.as_dict()
    assert report.imports == [f"{module}{':' if '.' in name else '.'}{name}"]
    assert not allowed(module, name)


@pytest.mark.parametrize(
    "module,name", [("sklearn.base", "platform.os.system"), ("datetime", "sys.modules")]
)
def test_the_model_process_refuses_an_attribute_walk_in_every_loader(module, name, tmp_path):
    data = _stack_global(module, name, 4)
    with pytest.raises(pickle.UnpicklingError, match="refusing to import"):
        child.RestrictedUnpickler(io.BytesIO(data)).load()
    path = tmp_path / "walk.joblib"
    path.write_bytes(data)
    with pytest.raises(pickle.UnpicklingError, match="refusing to import"):
        child.load(path, "joblib", trusted=False)


def _bomb(kind: str, inflated: int) -> bytes:
    """A joblib file holding one float array of `inflated` zero bytes, compressed with `kind`:
    about a thousand to one for zlib, far more for bz2."""
    small = 70_000
    plain = _joblib(np.zeros(small))
    marker = b"J" + small.to_bytes(4, "little")  # the shape's BININT
    start = plain.index(bytes(small * 8))
    head, tail = plain[:start], plain[start + small * 8 :]
    head = head.replace(marker, b"J" + (inflated // 8).to_bytes(4, "little"))
    compressor = {
        "zlib": lambda: zlib.compressobj(1),
        "gzip": lambda: zlib.compressobj(1, wbits=31),
        "bz2": lambda: bz2.BZ2Compressor(1),
        "xz": lambda: lzma.LZMACompressor(preset=0),
    }[kind]()
    parts, zeros, left = [compressor.compress(head)], bytes(8 * 1024 * 1024), inflated
    while left:
        parts.append(compressor.compress(zeros[: min(left, len(zeros))]))
        left -= min(left, len(zeros))
    return b"".join([*parts, compressor.compress(tail), compressor.flush()])


def _peak(data: bytes, **limits):
    tracemalloc.start()
    report = scan(io.BytesIO(data), **limits)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return report, peak


@pytest.mark.parametrize("kind", ["zlib", "gzip", "bz2", "xz"])
def test_a_decompression_bomb_is_unsafe_in_bounded_memory(kind):
    data = _bomb(kind, 160 * 1024**2)
    assert len(data) < 1024**2
    report, peak = _peak(data)
    assert report.verdict == "unsafe" and "SCAN_MAX_COMPRESSION_RATIO" in report.limit
    assert "decompression bomb" in report.problems[0]
    assert report.inflated_bytes < 100 * 1024**2 and peak < 16 * 1024**2


def test_the_inflated_size_limit_holds_whatever_the_ratio():
    data = _bomb("zlib", 96 * 1024**2)
    report, peak = _peak(data, max_ratio=10**6, max_inflated=32 * 1024**2)
    assert report.verdict == "unsafe" and "SCAN_MAX_INFLATED_BYTES" in report.limit
    assert peak < 16 * 1024**2
    assert scan(io.BytesIO(data), max_ratio=10**6).verdict == "safe"


def test_the_limits_come_from_settings(settings):
    settings.SCAN_MAX_INFLATED_BYTES = 1024**2
    report = scan(io.BytesIO(_joblib({"weights": np.zeros(200_000)})))
    assert report.verdict == "unsafe" and "1,048,576" in report.limit


def test_memory_stays_bounded_on_a_large_array():
    data = _joblib({"weights": np.zeros(8_000_000)})  # 64 MB of array bytes
    report, peak = _peak(data)
    assert report.verdict == "safe" and report.skipped_array_bytes == 64_000_000
    assert peak < 8 * 1024 * 1024


def test_bytes_inside_a_plain_pickle_are_skipped_not_held():
    data = pickle.dumps({"weights": np.zeros(8_000_000)}, protocol=5)
    report, peak = _peak(data)
    assert report.verdict == "safe" and peak < 8 * 1024 * 1024
