"""Operating a running pipeline from the command line: ``vsa cameras`` (the camera-config topic)
and ``vsa alerts`` (the alerts topic and the alerts index). The notifier service that forwards
alerts lives with the services (``vsa/services/notifier``)."""
