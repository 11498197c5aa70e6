some avg10=2.14 avg60=2.64 avg300=2.22 total=34318056
full avg10=1.85 avg60=1.73 avg300=1.41 total=26782558
