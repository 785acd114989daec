"""3D Slicer module: fully automatic inner-ear segmentation (cochlea, vestibule, semicircular canals).

Thin on purpose: the Slicer-free work lives in InnerEarSegmentationLib (inference, model cache,
dependencies, MRML output), which is tested headless; this file is the GUI and the self-test.
"""

import logging
import os
import shutil
import sys
import traceback
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin


class InnerEarSegmentation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Inner Ear Segmentation")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = ["Segmentations", "Terminologies"]
        self.parent.contributors = ["InnerEarSegmentation contributors"]
        self.parent.helpText = _("""
Segments the inner ear (cochlea, vestibule, semicircular canals) from temporal-bone CT or micro-CT,
fully automatically, with an auto-context cascade of 2D U-Nets (coronal, sagittal, axial) run by
onnxruntime on the GPU when one is usable. Select the CT and click <b>Segment inner ear</b>.
To try it without data, load <b>Temporal bone (synthetic)</b> from the Sample Data module.<br><br>
The segments are named by side (right or left ear), checked against the labyrinth's own handedness.<br><br>
<b>The shipped model is trained on computer renderings of four real temporal bones and on phantoms;
it has not been measured on clinical scans and is not clinically validated.</b>
Research use only; not a medical device.
""")
        self.parent.acknowledgementText = _("""
The method follows Hussain et al., "Automatic segmentation of inner ear on CT-scan using auto-context
convolutional neural network", Scientific Reports 2021.
""")
        slicer.app.connect("startupCompleted()", loadTerminology)
        slicer.app.connect("startupCompleted()", registerSampleData)


def loadTerminology():
    """Registers our .term.json so Slicer's terminology selector knows cochlea, vestibule, canals."""
    try:
        from InnerEarSegmentationLib.terminology import load_into_slicer

        load_into_slicer(slicer.modules.terminologies.logic())
    except Exception as error:  # never block Slicer's startup over a terminology list
        logging.warning(f"InnerEarSegmentation: {error}")


def registerSampleData():
    """Adds "Temporal bone (synthetic)" to the Sample Data module: one click to a scan to try."""
    import SampleData
    from InnerEarSegmentationLib import sample_data

    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category=_("Inner ear"), sampleName=sample_data.SAMPLE_NAME, uris=[""],
        fileNames=[sample_data.FILE_NAME], nodeNames=[_("Temporal bone (synthetic)")], checksums=[None],
        thumbnailFileName=os.path.join(os.path.dirname(__file__), "Resources", "Icons",
                                       "TemporalBoneSynthetic.png"),
        loadFileTypes=["VolumeFile"], customDownloader=loadSyntheticTemporalBone)


def loadSyntheticTemporalBone(source=None):
    """Generates the sample phantom on first use (seconds, once) and loads it."""
    from InnerEarSegmentationLib.sample_data import synthetic_temporal_bone

    with slicer.util.tryWithErrorDisplay(_("Could not make the synthetic temporal bone."), waitCursor=True):
        return slicer.util.loadVolume(str(synthetic_temporal_bone()), {"name": _("Temporal bone (synthetic)")})


@parameterNodeWrapper
class InnerEarSegmentationParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    model: str = ""  # model folder; "" is the shipped model
    device: Annotated[str, Choice(["auto", "cpu", "gpu"])] = "auto"
    side: Annotated[str, Choice(["both", "right", "left"])] = "both"
    smoothing: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    keepLargestComponent: bool = True
    show3D: bool = True


class InnerEarSegmentationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job = None
        self._onJobDone = None
        self._measurementViews = []

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/InnerEarSegmentation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = InnerEarSegmentationLogic()

        menu = qt.QMenu(self.ui.importModelButton)
        menu.addAction(_("From folder…"), lambda: self.onImportModel("folder"))
        menu.addAction(_("From .zip file…"), lambda: self.onImportModel("zip"))
        menu.addAction(_("From URL…"), lambda: self.onImportModel("url"))
        self.ui.importModelButton.setMenu(menu)
        self.ui.progressBar.setRange(0, 1000)
        self._setRunning(False)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegment)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.ui.statisticsButton.connect("clicked(bool)", self.onStatistics)
        self._timer = qt.QTimer()
        self._timer.setInterval(100)
        self._timer.connect("timeout()", self._poll)
        self._setupMeasurements()
        self.refreshModels()
        self.initializeParameterNode()

    def _setupMeasurements(self):
        """A table of each cochlea's measurements under the results (one per ear); edits
        re-measure after a pause."""
        self._measurementTables = []
        for _side in range(2):
            table = slicer.qMRMLTableView()
            table.setMRMLScene(slicer.mrmlScene)
            table.visible = False
            self.layout.addWidget(table)
            self._measurementTables.append(table)
        self._measureTimer = qt.QTimer()
        self._measureTimer.setSingleShot(True)
        self._measureTimer.setInterval(800)
        self._measureTimer.connect("timeout()", lambda: [view.update() for view in self._measurementViews])

    def _showMeasurements(self, segmentation):
        from InnerEarSegmentationLib.mrml_measurements import CochleaMeasurementView, cochlea_sides

        for view in self._measurementViews:
            view.close()
        self._measurementViews = [CochleaMeasurementView(segmentation, lambda work: self._measureTimer.start(), side)
                                  for side in cochlea_sides(segmentation)]
        for index, table in enumerate(self._measurementTables):
            shown = index < len(self._measurementViews)
            table.setMRMLTableNode(self._measurementViews[index].nodes["table"] if shown else None)
            table.visible = shown

    def cleanup(self):
        if self._job is not None:
            self._job.cancel()
        for view in self._measurementViews:
            view.close()
        self._timer.stop()
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateState)

    def onSceneStartClose(self, caller, event):
        if self._job is not None:  # a segmentation run also cancels itself on this event
            self._job.cancel()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        firstVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
        if not self._parameterNode.inputVolume and firstVolume:
            self._parameterNode.inputVolume = firstVolume

    def setParameterNode(self, inputParameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateState)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateState)
            self._updateState()

    def _updateState(self, caller=None, event=None):
        node = self._parameterNode
        ready = bool(node and node.inputVolume) and self._job is None
        self.ui.segmentButton.enabled = ready
        self.ui.segmentButton.toolTip = _("Run the cascade on the selected CT.") if ready else _("Select a CT volume.")
        index = self.ui.modelComboBox.findData(node.model if node else "")
        if index >= 0 and index != self.ui.modelComboBox.currentIndex:
            self.ui.modelComboBox.currentIndex = index
        self._showResults(node.outputSegmentation if node else None)

    # Models ---------------------------------------------------------------------------------

    def refreshModels(self):
        wasBlocked = self.ui.modelComboBox.blockSignals(True)
        self.ui.modelComboBox.clear()
        for label, folder in self.logic.availableModels():
            self.ui.modelComboBox.addItem(label, folder)
        self.ui.modelComboBox.blockSignals(wasBlocked)

    def onModelChanged(self, index):
        if self._parameterNode and index >= 0:
            self._parameterNode.model = self.ui.modelComboBox.itemData(index) or ""

    def onImportModel(self, kind):
        if kind == "folder":
            source = qt.QFileDialog.getExistingDirectory(None, _("Model folder (with manifest.json)"))
        elif kind == "zip":
            source = qt.QFileDialog.getOpenFileName(None, _("Model archive"), "", _("Model archives (*.zip)"))
        else:
            source = qt.QInputDialog.getText(None, _("Import model"), _("URL of a model .zip or manifest.json:"))
        if not source:
            return
        from InnerEarSegmentationLib.background import BackgroundJob
        from InnerEarSegmentationLib.model_store import import_model

        def done(job):
            if job.error is not None:
                raise job.error
            self.refreshModels()
            self._parameterNode.model = str(job.result)
            self.ui.statusLabel.text = _("Model imported into {folder}").format(folder=job.result)

        job = BackgroundJob(lambda progress: import_model(source, progress=progress)).start()
        self._startJob(job, done, _("Importing model…"))

    # Segmentation ---------------------------------------------------------------------------

    def onSegment(self):
        node = self._parameterNode
        output = node.outputSegmentation
        if output and output.GetSegmentation().GetNumberOfSegments():
            count = output.GetSegmentation().GetNumberOfSegments()
            if not slicer.util.confirmOkCancelDisplay(
                    _("'{name}' already has {count} segment(s). Replace them?").format(name=output.GetName(), count=count),
                    _("Replace segmentation")):
                return
        with slicer.util.tryWithErrorDisplay(_("Cannot start the segmentation."), waitCursor=True):
            plan = self.logic.installPlan(node.device)
            if plan is None:
                return
            if plan.needed:
                from InnerEarSegmentationLib.dependencies import pip_failure
                from InnerEarSegmentationLib.processes import CommandSequence

                steps = CommandSequence(plan.commands(self.logic.pythonExecutable()), slicer.app.temporaryPath,
                                        pip_failure)

                def installed(job):
                    from InnerEarSegmentationLib.errors import Cancelled

                    if job.cancelled:
                        raise Cancelled(job.failure)
                    if job.failure:
                        raise RuntimeError(job.failure)
                    self.onSegment()

                self._startJob(steps, installed, _("Installing onnxruntime ({steps})…").format(steps=plan.describe()))
                return
            run = self.logic.startSegmentation(node.inputVolume, output, node.model, node.device, bool(output),
                                               node.smoothing, node.keepLargestComponent, node.show3D, preview=True,
                                               side=node.side)

        def done(job):
            node.outputSegmentation = job.finish()
            self._showPreview(job.preview_png)
            self._showMeasurements(node.outputSegmentation)
            self.ui.statusLabel.text = _("Done.")

        self._startJob(run, done, _("Segmenting…"))

    def _startJob(self, job, onDone, message):
        self._job, self._onJobDone = job, onDone
        self.ui.statusLabel.text = message
        self._setRunning(True)
        self._timer.start()

    def _poll(self):
        job = self._job
        latest = job.poll() if job else None
        if isinstance(latest, tuple):
            self.ui.progressBar.setRange(0, 1000)
            self.ui.progressBar.value = int(latest[0] * 1000)
            self.ui.progressBar.format = f"{latest[1]} (%p%)"
        elif latest:  # a line of pip's output: no fraction known
            self.ui.progressBar.setRange(0, 0)
            self.ui.statusLabel.text = latest[:200]
        if job is None or not job.finished:
            return
        self._timer.stop()
        self._job = None
        self._setRunning(False)
        try:
            self._finish(job)
        finally:
            self._updateState()

    def _finish(self, job):
        from InnerEarSegmentationLib.errors import Cancelled, InnerEarError

        try:
            self._onJobDone(job)
        except Cancelled as error:
            self.ui.statusLabel.text = str(error)
        except InnerEarError as error:  # a message meant for the user, no traceback
            self.ui.statusLabel.text = _("Failed.")
            slicer.util.errorDisplay(str(error))
        except Exception as error:
            self.ui.statusLabel.text = _("Failed.")
            logging.error(traceback.format_exc())
            slicer.util.errorDisplay(_("Unexpected error: {error}").format(error=error),
                                     detailedText=traceback.format_exc())

    def onCancel(self):
        if self._job is not None:
            self._job.cancel()
            self.ui.statusLabel.text = _("Cancelling…")

    def _setRunning(self, running):
        self.ui.progressBar.visible = running
        self.ui.cancelButton.visible = running
        self.ui.progressBar.setRange(0, 1000)
        self.ui.progressBar.value = 0
        self.ui.segmentButton.enabled = not running and bool(self._parameterNode and self._parameterNode.inputVolume)

    def _showPreview(self, png):
        self.ui.previewLabel.visible = bool(png)
        if png:
            pixmap = qt.QPixmap()
            pixmap.loadFromData(qt.QByteArray(png))
            self.ui.previewLabel.setPixmap(pixmap.scaledToWidth(max(self.ui.previewLabel.width, 200),
                                                                qt.Qt.SmoothTransformation))

    def _showResults(self, segmentation):
        from InnerEarSegmentationLib.laterality import side_summary
        from InnerEarSegmentationLib.mrml_output import report_of

        report = report_of(segmentation) if segmentation else None
        if report:
            seconds = sum(report.get("timings_s", {}).values())
            model = report.get("model", {})
            warnings = "".join("\n" + _("Warning: {text}").format(text=text) for text in report.get("warnings", []))
            ears = report.get("ears") or [report]  # older reports: one ear, its sections at the top
            side = "".join("\n" + _("Side: {text}").format(text=side_summary(ear["laterality"]))
                           for ear in ears if "laterality" in ear)
            self.ui.runInfoLabel.text = _("{seconds:.1f} s on {provider} · model {model} {version}").format(
                seconds=seconds, provider=report.get("provider", "?"), model=model.get("id", "?"),
                version=model.get("version", "")) + side + warnings
        else:
            self.ui.runInfoLabel.text = ""
            self._showPreview(None)
        hasSegments = bool(segmentation and segmentation.GetSegmentation().GetNumberOfSegments())
        self.ui.exportButton.enabled = hasSegments
        self.ui.statisticsButton.enabled = hasSegments

    def onStatistics(self):
        """Opens Segment Statistics on the result: its volumes follow any later edit."""
        node = self._parameterNode
        slicer.util.selectModule("SegmentStatistics")
        statistics = slicer.modules.segmentstatistics.widgetRepresentation().self()
        statistics.segmentationSelector.setCurrentNode(node.outputSegmentation)
        statistics.scalarSelector.setCurrentNode(node.inputVolume)

    def onExport(self):
        segmentation = self._parameterNode.outputSegmentation
        folder = qt.QFileDialog.getExistingDirectory(None, _("Folder for the surface files"))
        if not segmentation or not folder:
            return
        from InnerEarSegmentationLib.mrml_output import export_surfaces

        with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
            files = export_surfaces(segmentation, folder, self.ui.exportFormatComboBox.currentText)
            self.ui.statusLabel.text = _("Wrote {count} file(s) into {folder}").format(count=len(files), folder=folder)


class InnerEarSegmentationLogic(ScriptedLoadableModuleLogic):
    """Console use: ``InnerEarSegmentationLogic().segment(getNode('CT'))`` returns the segmentation."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._dependenciesChecked = False

    def getParameterNode(self):
        return InnerEarSegmentationParameterNode(super().getParameterNode())

    @staticmethod
    def pythonExecutable():
        """The interpreter for the child processes: PythonSlicer inside Slicer (its own executable
        is not a Python interpreter)."""
        return shutil.which("PythonSlicer") or sys.executable

    @staticmethod
    def _ask(text):
        return slicer.util.confirmOkCancelDisplay(text, _("Install onnxruntime"))

    def installPlan(self, device="auto", ask=None):
        """What to install after the user agreed (possibly nothing); None when they declined a
        required install (the reason is shown)."""
        if self._dependenciesChecked:
            from InnerEarSegmentationLib.dependencies import InstallPlan

            return InstallPlan()
        from InnerEarSegmentationLib.dependencies import decide_install

        try:
            plan = decide_install(ask or self._ask, device)
        except RuntimeError as error:
            slicer.util.errorDisplay(str(error))
            return None
        self._dependenciesChecked = not plan.needed  # checked again once the install has run
        return plan

    def ensureDependencies(self, ask=None, device="auto"):
        """Console use: asks, installs (blocking) and returns True when onnxruntime is ready."""
        if self._dependenciesChecked:
            return True
        from InnerEarSegmentationLib.dependencies import ensure_onnxruntime

        try:
            ensure_onnxruntime(ask or self._ask, self.pythonExecutable(), device)
        except RuntimeError as error:
            slicer.util.errorDisplay(str(error))
            return False
        self._dependenciesChecked = True
        return True

    def availableModels(self):
        """(label, folder) pairs: the shipped model first ("" folder), then the shared cache."""
        from InnerEarSegmentationLib.model import available_models, default_model_folder, load_model
        from InnerEarSegmentationLib.model_store import cached_models

        models = []
        for folder in [*available_models(), *cached_models()]:
            try:
                manifest = load_model(folder, verify=False)
            except Exception as error:
                logging.warning(f"Skipping model {folder}: {error}")
                continue
            shipped = folder.resolve() == default_model_folder().resolve()
            label = _("{name} (shipped)").format(name=manifest.name) if shipped else manifest.name
            models.append((label, "" if shipped else str(folder)))
        return models

    def startSegmentation(self, volumeNode, segmentationNode=None, model=None, device="auto", replace=False,
                          smoothing=0.5, keepLargestComponent=True, show3D=True, preview=False, side="both"):
        """Starts the child process and returns the run; poll it, then ``finish()`` it (the panel)."""
        from InnerEarSegmentationLib.mrml_segment import SegmentationRun

        return SegmentationRun(volumeNode, segmentationNode, model, device, replace, smoothing,
                               keepLargestComponent, show3D, self.pythonExecutable(), preview, side=side).start()

    def segment(self, volumeNode, segmentationNode=None, model=None, device="auto", replace=False,
                smoothing=0.5, keepLargestComponent=True, show3D=True, progress=None, side="both"):
        """Segments ``volumeNode`` and returns the vtkMRMLSegmentationNode (created if None): each
        ear the scan shows ("Right cochlea", ..., "Left cochlea", ...), or only ``side``.

        Raises OutputError if ``segmentationNode`` already has segments and ``replace`` is False.
        """
        from InnerEarSegmentationLib.mrml_output import check_can_write
        from InnerEarSegmentationLib.mrml_segment import segment_volume_node

        check_can_write(segmentationNode, replace)
        if not self.ensureDependencies(device=device):
            raise RuntimeError(_("onnxruntime is not available."))
        return segment_volume_node(volumeNode, segmentationNode, model, device, replace, smoothing,
                                   keepLargestComponent, show3D, progress, self.pythonExecutable(), side=side)


class InnerEarSegmentationTest(ScriptedLoadableModuleTest):
    """Runs the real shipped model on a small phantom inside Slicer (a few seconds on a CPU)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_segment_phantom()
        self.setUp()
        self.test_refuses_existing_segments()

    def _phantomVolume(self):
        from InnerEarSegmentationLib.mrml_volume import volume_node_from_sitk
        from InnerEarSegmentationLib.phantom import make_phantom

        phantom = make_phantom(seed=7, spacing_mm=0.5, fov_mm=20.0)
        volume = volume_node_from_sitk(phantom.image(), slicer.mrmlScene, "Phantom CT")
        volume.CreateDefaultDisplayNodes()
        return volume

    def test_segment_phantom(self):
        from InnerEarSegmentationLib import terminology
        from InnerEarSegmentationLib.mrml_output import report_of, segment_terminology

        logic = InnerEarSegmentationLogic()
        if not logic.ensureDependencies():  # the user is asked, as on any first run
            self.skipTest("onnxruntime is not installed and the user declined to install it")
        self.delayDisplay("Segmenting a phantom with the shipped model")
        segmentation = logic.segment(self._phantomVolume(), device="cpu")
        segments = segmentation.GetSegmentation()
        names = [segments.GetNthSegment(i).GetName() for i in range(segments.GetNumberOfSegments())]
        self.assertEqual(names, ["Cochlea", "Vestibule", "Semicircular canals"])
        for index, name in enumerate(names):
            self.assertEqual(segment_terminology(segments.GetNthSegment(index)), terminology.terminology_entry(name))
        self.assertTrue(segments.ContainsRepresentation("Closed surface"))
        volumes = {s["name"]: s["volume_mm3"] for s in report_of(segmentation)["segments"]}
        self.assertTrue(all(v > 0 for v in volumes.values()), volumes)
        self.delayDisplay(f"Test passed: {volumes}")

    def test_refuses_existing_segments(self):
        from InnerEarSegmentationLib.errors import OutputError

        existing = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        existing.GetSegmentation().AddEmptySegment("mine")
        with self.assertRaises(OutputError):
            InnerEarSegmentationLogic().segment(self._phantomVolume(), existing)
        self.delayDisplay("Test passed: existing segments are kept")
