for epoc in range(30):
    print('I forgot the notebook')
